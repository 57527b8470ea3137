package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestBatchRoundTrips serves the Northbank example with the delegation
// records and the consent ledger on PostgreSQL, reached through a proxy
// that counts round trips (a Sync of the extended protocol, or a simple
// Query), and asks batches of 100 evaluations: a batch of people acting
// for others (delegation records) and a batch on a consent basis (the
// ledger). Each must cost at most 3 round trips to those stores, whatever
// its size, and answer what the same evaluations answer one by one.
func TestBatchRoundTrips(t *testing.T) {
	uri := testDatabase(t)
	proxy := newPGCounter(t, uri)
	t.Setenv("PDP_DELEGATIONS_ENGINE", "postgres")
	t.Setenv("PDP_DELEGATIONS_POSTGRES_URI", proxy.uri)
	t.Setenv("PDP_CONSENT_ENGINE", "postgres")
	t.Setenv("PDP_CONSENT_POSTGRES_URI", proxy.uri)
	s := startNorthbank(t)

	user := func(id string) string { return `{"type":"user","id":"` + id + `"}` }
	account := func(id string) string { return `{"type":"account","id":"` + id + `"}` }
	item := func(subject, action, resource, ctx string) string {
		return `{"subject":` + subject + `,"action":{"name":"` + action + `"},"resource":` + resource + `,"context":` + ctx + `}`
	}
	pay := func(amount string) string { return forUser("alice", `,"amount":`+amount+`,"currency":"EUR"`) }
	acting := []string{
		item(user("bob"), "make_payment", account("acc-alice"), pay("250")),
		item(user("bob"), "make_payment", account("acc-alice"), pay("1500")),
		item(user("oscar"), "view_statements", account("acc-alice"), forUser("alice", "")),
		item(user("peggy"), "view_statements", account("acc-alice"), forUser("alice", "")),
		item(user("dave"), "make_payment", account("acc-carol"), forUser("carol", `,"amount":500`)),
		item(user("frank"), "view_statements", account("acc-acme"), forAcme("")),
		item(user("frank"), "make_payment", account("acc-acme"), forAcme(`,"amount":10`)),
		item(user("mallory"), "view_statements", account("acc-alice"), forUser("alice", "")),
		item(user("alice"), "view_statements", account("acc-alice"), `{"purpose":"account_servicing"}`),
	}
	sharing := []string{
		item(user("alice"), "share_account_information", account("acc-alice"), `{"purpose":"account_information_sharing"}`),
		item(user("judy"), "share_account_information", account("acc-judy"), `{"purpose":"account_information_sharing"}`),
	}
	for _, c := range []struct {
		name, app string
		kinds     []string
	}{
		{"acting for others", "mobile-banking", acting},
		{"consent basis", "budget-app", sharing},
	} {
		t.Run(c.name, func(t *testing.T) {
			items := make([]string, 100)
			for i := range items {
				items[i] = c.kinds[i%len(c.kinds)]
			}
			body := `{"evaluations":[` + strings.Join(items, ",") + `]}`
			batch := func() []nbDecision {
				t.Helper()
				code, data := s.do(t, http.MethodPost, "/access/v1/evaluations", body, demoKey(c.app)...)
				if code != http.StatusOK {
					t.Fatalf("evaluations: %d %s", code, data)
				}
				var ans struct {
					Evaluations []nbDecision `json:"evaluations"`
				}
				if err := json.Unmarshal(data, &ans); err != nil || len(ans.Evaluations) != len(items) {
					t.Fatalf("evaluations answer (%v): %s", err, data)
				}
				return ans.Evaluations
			}
			batch() // statements prepared, connections open
			proxy.reset()
			got := batch()
			trips := proxy.trips()
			t.Logf("%d evaluations, %d round trips to the delegation and consent stores: %q", len(items), len(trips), trips)
			if len(trips) > 3 {
				t.Errorf("a batch of %d evaluations made %d round trips to the delegation and consent stores, want at most 3", len(items), len(trips))
			}
			for i, kind := range c.kinds {
				var one nbDecision
				code, data := s.do(t, http.MethodPost, "/access/v1/evaluation", kind, demoKey(c.app)...)
				if code != http.StatusOK || json.Unmarshal(data, &one) != nil {
					t.Fatalf("evaluation: %d %s", code, data)
				}
				for j := i; j < len(got); j += len(c.kinds) {
					if !sameDecision(got[j], one) {
						t.Errorf("item %d: batch answered %+v, alone %+v", j, got[j], one)
					}
				}
			}
		})
	}
}

func sameDecision(a, b nbDecision) bool {
	return a.Decision == b.Decision && slices.Equal(a.Context.Reasons, b.Context.Reasons) &&
		slices.Equal(a.Context.Policies, b.Context.Policies) && slices.Equal(a.Context.Obligations, b.Context.Obligations) &&
		slices.Equal(a.Context.Delegations, b.Context.Delegations) && a.Context.DelegationStatus == b.Context.DelegationStatus
}

// pgCounter is a TCP proxy in front of PostgreSQL that reads what the
// clients send and records every round trip: the statements of each
// Sync-terminated pipeline of the extended protocol, or a simple Query.
// Writes of the consent ledger's activity flusher (a background timer, not
// a decision's work) are not counted.
type pgCounter struct {
	uri string

	mu     sync.Mutex
	stmts  map[string]string // prepared statement name → SQL
	rounds []string
}

func newPGCounter(t *testing.T, target string) *pgCounter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	upstream := u.Host
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = l.Addr().String()
	c := &pgCounter{uri: u.String(), stmts: map[string]string{}}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		_ = l.Close()
		conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = client.Close()
				continue
			}
			conns.Store(client, true)
			conns.Store(server, true)
			wg.Go(func() { _, _ = io.Copy(client, server); _ = client.Close() })
			wg.Go(func() { c.follow(io.TeeReader(client, server)); _ = server.Close() })
		}
	})
	return c
}

// follow reads the client's messages until the connection ends.
func (c *pgCounter) follow(r io.Reader) {
	// The untyped start: SSL or GSS encryption requests (refused with
	// sslmode=disable), then the startup message.
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		code := binary.BigEndian.Uint32(hdr[4:])
		if _, err := io.CopyN(io.Discard, r, int64(n-8)); err != nil {
			return
		}
		if code != 80877103 && code != 80877104 { // SSLRequest, GSSENCRequest
			break
		}
	}
	var pipeline []string
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint32(hdr[1:]))-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch hdr[0] {
		case 'P': // Parse: name, query
			name, rest, _ := cstring(body)
			query, _, _ := cstring(rest)
			c.mu.Lock()
			c.stmts[name] = query
			c.mu.Unlock()
			pipeline = append(pipeline, query)
		case 'B': // Bind: portal, statement
			_, rest, _ := cstring(body)
			name, _, _ := cstring(rest)
			c.mu.Lock()
			pipeline = append(pipeline, c.stmts[name])
			c.mu.Unlock()
		case 'S':
			c.record(pipeline)
			pipeline = nil
		case 'Q':
			query, _, _ := cstring(body)
			c.record([]string{query})
		}
	}
}

func (c *pgCounter) record(stmts []string) {
	all := strings.Join(stmts, "; ")
	if strings.Contains(all, "pdp_consent_activity") && strings.Contains(all, "INSERT") {
		return
	}
	c.mu.Lock()
	c.rounds = append(c.rounds, strings.Join(strings.Fields(all), " "))
	c.mu.Unlock()
}

func (c *pgCounter) reset() {
	c.mu.Lock()
	c.rounds = nil
	c.mu.Unlock()
}

func (c *pgCounter) trips() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The shared change feed lives in the same database: its heartbeats,
	// outbox sweeps and polls run on their own clock, whatever the
	// decisions do, and are not round trips of the batch.
	return slices.DeleteFunc(slices.Clone(c.rounds), func(q string) bool {
		return strings.Contains(q, "pdp_replicas") || strings.Contains(q, "pdp_changes")
	})
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (string, []byte, error) {
	i := slices.Index(b, 0)
	if i < 0 {
		return "", nil, errors.New("no NUL")
	}
	return string(b[:i]), b[i+1:], nil
}
