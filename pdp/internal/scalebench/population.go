// Package scalebench generates a bank-sized relationship graph (by default
// 1 M users and about 10 M relationships), streamed, never held in memory,
// for the scale run of the relationship store on PostgreSQL (scale_test.go).
package scalebench

import (
	"fmt"
	"iter"
	"math/rand/v2"

	"github.com/ciampdp/pdp/pdp/relations"
)

// Zed is the SpiceDB schema of the population: accounts with owners,
// co-owners, viewers (household members), payment delegates within a limit
// and a branch whose staff view them; users with guardians, who act for
// them.
const Zed = `
caveat within_limit(amount double, limit double) {
	amount <= limit
}

definition user {
	relation guardian: user
	permission act_for = guardian
}

definition branch {
	relation staff: user
}

definition account {
	relation owner: user
	relation co_owner: user
	relation viewer: user
	relation delegate: user with within_limit
	relation branch: branch
	permission manage = owner + co_owner
	permission pay = manage + delegate
	permission view = pay + viewer + branch->staff + owner->act_for
}
`

// CedarSchema and Policies are the Cedar side: viewing an account needs
// the view fact; a payment needs pay (a delegate's limit is judged by
// SpiceDB's caveat with the request's amount), and above 10,000 manage.
const (
	CedarSchema = `
entity User;
entity Account;
action view_account appliesTo { principal: [User], resource: [Account],
  context: { rel: { view: Bool } } };
action make_payment appliesTo { principal: [User], resource: [Account],
  context: { amount: Long, rel: { pay: Bool, manage: Bool } } };
`
	Policies = `
@id("view")
permit (principal, action == Action::"view_account", resource) when { context.rel.view };
@id("pay")
permit (principal, action == Action::"make_payment", resource)
  when { context.rel.pay && (context.amount <= 10000 || context.rel.manage) };
`
)

// Params shape the population. Per user, drawn from a generator seeded
// with (Seed, user), so any range of users generates alone and the same
// every time.
type Params struct {
	Seed     uint64
	Users    int
	Branches int
	// StaffPerBranch users work at each branch (users 0, 1, … in order).
	StaffPerBranch int
}

// Default is the scale run: 1 M users, 3 M accounts, about 10.1 M
// relationships.
var Default = Params{Seed: 1, Users: 1_000_000, Branches: 1_000, StaffPerBranch: 20}

// Shares of the population (in percent).
const (
	coOwnerPercent   = 30 // accounts with a co-owner
	viewerPercent    = 85 // accounts with a viewer
	delegatorPercent = 20 // users with a payment delegate on every account
	guardianPercent  = 5  // users with a guardian
)

// UserID and AccountID name the objects.
func UserID(u int) string    { return fmt.Sprintf("u%d", u) }
func AccountID(a int) string { return fmt.Sprintf("acc%d", a) }

func userRNG(seed uint64, u int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(u)))
}

// accounts is how many accounts user u owns: 1 to 5, 3 on average.
func accounts(r *rand.Rand) int { return 1 + r.IntN(5) }

// Relationships streams the relationships of users [from, to); the branch
// staff come with the range that holds user 0. firstAccount is the number
// of the first account of user from (see FirstAccounts); accounts are
// numbered in user order.
func (p Params) Relationships(from, to, firstAccount int) iter.Seq[relations.Relationship] {
	return func(yield func(relations.Relationship) bool) {
		obj := func(typ, id string) relations.Object { return relations.Object{Type: typ, ID: id} }
		if from == 0 {
			for b := range p.Branches {
				for k := range p.StaffPerBranch {
					if !yield(relations.Relationship{Resource: obj("branch", fmt.Sprintf("b%d", b)), Relation: "staff",
						Subject: obj("user", UserID(b*p.StaffPerBranch+k))}) {
						return
					}
				}
			}
		}
		acc := firstAccount
		for u := from; u < to; u++ {
			r := userRNG(p.Seed, u)
			n := accounts(r)
			owner := obj("user", UserID(u))
			delegator := r.IntN(100) < delegatorPercent
			var delegate string
			var limit float64
			if delegator {
				delegate, limit = UserID(r.IntN(p.Users)), float64(100*(1+r.IntN(50)))
			}
			if r.IntN(100) < guardianPercent {
				if !yield(relations.Relationship{Resource: owner, Relation: "guardian", Subject: obj("user", UserID(r.IntN(p.Users)))}) {
					return
				}
			}
			for range n {
				a := obj("account", AccountID(acc))
				acc++
				rels := [5]relations.Relationship{
					{Resource: a, Relation: "owner", Subject: owner},
					{Resource: a, Relation: "branch", Subject: obj("branch", fmt.Sprintf("b%d", r.IntN(p.Branches)))},
				}
				k := 2
				if r.IntN(100) < coOwnerPercent {
					rels[k] = relations.Relationship{Resource: a, Relation: "co_owner", Subject: obj("user", UserID(r.IntN(p.Users)))}
					k++
				}
				if r.IntN(100) < viewerPercent {
					rels[k] = relations.Relationship{Resource: a, Relation: "viewer", Subject: obj("user", UserID(r.IntN(p.Users)))}
					k++
				}
				if delegator {
					rels[k] = relations.Relationship{Resource: a, Relation: "delegate", Subject: obj("user", delegate),
						Caveat: "within_limit", CaveatContext: map[string]any{"limit": limit}}
					k++
				}
				for _, rel := range rels[:k] {
					if !yield(rel) {
						return
					}
				}
			}
		}
	}
}

// FirstAccounts returns, for every user, the number of their first
// account, and after the last user the number of accounts: a user u owns
// accounts first[u] to first[u+1]-1. It draws only the account counts
// (4 MiB for 1 M users).
func (p Params) FirstAccounts() []int32 {
	first := make([]int32, p.Users+1)
	n := 0
	for u := range p.Users {
		first[u] = int32(n)
		n += accounts(userRNG(p.Seed, u))
	}
	first[p.Users] = int32(n)
	return first
}

func (p Params) String() string {
	return fmt.Sprintf("%d users, %d branches with %d staff each, seed %d", p.Users, p.Branches, p.StaffPerBranch, p.Seed)
}
