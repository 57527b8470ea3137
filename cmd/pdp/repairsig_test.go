package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// factCase is one kind of record that the start-up check and pdp repair
// compare with its store: made through the running PDP, then lost from
// the store, then found again.
type factCase struct {
	name string
	// act makes the record through the running PDP; it returns the
	// question that tells the record is there and the answer it gets.
	act func(t *testing.T, s *server) (ask func(*server) sigDecision, want string)
	// cutFile cuts the record from the file store (the last line holding
	// marker); cutSQL deletes it from the PostgreSQL store.
	file, marker, cutSQL string
	// named is what the refusal and pdp repair --check name.
	named string
}

// describe is a decision as the tests compare it.
func describe(d sigDecision) string {
	return fmt.Sprintf("%v %v %v", d.Decision, d.Context.Reasons, d.Context.Obligations)
}

var factCases = []factCase{
	{
		name: "session-revoked",
		act: func(t *testing.T, s *server) (func(*server) sigDecision, string) {
			revoked := time.Now().Add(-time.Minute).Unix()
			s.push(t, "session-revoked", "alice", "--jti", "rs-session-alice", "--event-time", strconv.FormatInt(revoked, 10))
			ctx := fmt.Sprintf(`{"purpose":"account_servicing","session":{"id":"s-old","auth_time":%d}}`, revoked-3600)
			return func(s *server) sigDecision { return s.sigAsk(t, "alice", "view_statements", "acc-alice", ctx) }, "false [session_revoked] []"
		},
		file: "signals.jsonl", marker: `"jti":"rs-session-alice"`, cutSQL: `DELETE FROM pdp_signal_events WHERE jti = 'rs-session-alice'`,
		named: "signal.receive: signal rs-session-alice from https://risk.northbank.example/ (session-revoked of User::",
	},
	{
		name: "credential-compromise",
		act: func(t *testing.T, s *server) (func(*server) sigDecision, string) {
			s.push(t, "credential-compromise", "bob", "--jti", "rs-compromise-bob")
			pay := forUser("alice", `,"amount":250,"currency":"EUR"`)
			return func(s *server) sigDecision { return s.sigAsk(t, "bob", "make_payment", "acc-alice", pay) }, "false [account_compromised] []"
		},
		file: "signals.jsonl", marker: `"jti":"rs-compromise-bob"`, cutSQL: `DELETE FROM pdp_signal_events WHERE jti = 'rs-compromise-bob'`,
		named: "signal.receive: signal rs-compromise-bob from https://risk.northbank.example/ (credential-compromise of User::",
	},
	{
		name: "revalidation",
		act: func(t *testing.T, s *server) (func(*server) sigDecision, string) {
			ask := func(s *server) sigDecision {
				return s.sigAsk(t, "heidi", "view_statements", "acc-heidi", `{"purpose":"account_servicing"}`)
			}
			wantDecision(t, ask(s), false, []string{"revalidation_required"}, []string{"identity_revalidation"})
			code, data := s.do(t, http.MethodPost, "/v1/dormancy/identities/user:heidi/revalidate",
				`{"actor":{"type":"staff","id":"kim"},"reason":"identity checked at the branch"}`, demoKey("backoffice")...)
			if code != http.StatusCreated {
				t.Fatalf("revalidate heidi: %d %s", code, data)
			}
			return ask, "true [] []"
		},
		file: "revalidations.jsonl", marker: `"id":"heidi"`, cutSQL: `DELETE FROM pdp_dormancy_revalidations WHERE body->'subject'->>'id' = 'heidi'`,
		named: "dormancy.revalidate: revalidation rv-",
	},
}

// TestSignalsAndRevalidationsRefuseStartUntilRepaired: a risk signal or a
// revalidation is made through the running PDP (acknowledged, in the
// trail), then its store loses it (the file cut in the middle of its line;
// the PostgreSQL row deleted, as a restore from an older backup would).
// serve refuses to start naming it; pdp repair --check lists it (exit 1);
// pdp repair applies it; serve starts and answers as before the loss.
func TestSignalsAndRevalidationsRefuseStartUntilRepaired(t *testing.T) {
	for _, engine := range []string{"file", "postgres"} {
		for _, c := range factCases {
			t.Run(engine+"/"+c.name, func(t *testing.T) {
				root := t.TempDir()
				data := filepath.Join(root, "data")
				storageEnv(t, data, filepath.Join(root, "trail"))
				var uri string
				if engine == "postgres" {
					uri = testDatabase(t)
					for _, k := range []string{"DELEGATIONS", "CONSENT", "SIGNALS"} {
						t.Setenv("PDP_"+k+"_ENGINE", "postgres")
						t.Setenv("PDP_"+k+"_POSTGRES_URL", uri)
					}
				}

				s := startNorthbank(t)
				ask, want := c.act(t, s)
				if got := describe(ask(s)); got != want {
					t.Fatalf("after the %s: %s, want %s", c.name, got, want)
				}
				s.stop(t)

				if engine == "file" {
					cutLastLineWith(t, filepath.Join(data, c.file), c.marker)
				} else {
					execSQL(t, uri, c.cutSQL)
				}
				serveRefusesNaming(t, c.named, "pdp repair")

				code, out, errOut := pdpRun(append([]string{"repair", "--check"}, exampleConfig()...)...)
				if code != exitFailure || !strings.Contains(out, "1 acknowledged changes are missing") || !strings.Contains(out, c.named) {
					t.Fatalf("pdp repair --check: %d, want %d naming %q:\n%s%s", code, exitFailure, c.named, out, errOut)
				}
				code, out, errOut = pdpRun(append([]string{"repair"}, exampleConfig()...)...)
				if code != exitOK || !strings.Contains(out, "repaired: 1 changes applied") {
					t.Fatalf("pdp repair: %d\n%s%s", code, out, errOut)
				}
				if code, out, _ := pdpRun(append([]string{"repair", "--check"}, exampleConfig()...)...); code != exitOK || !strings.Contains(out, "nothing to repair") {
					t.Fatalf("pdp repair --check after the repair: %d\n%s", code, out)
				}

				s = startNorthbank(t)
				if got := describe(ask(s)); got != want {
					t.Fatalf("after the repair: %s, want %s (as before the loss)", got, want)
				}
				s.stop(t)
			})
		}
	}
}

// execSQL runs one statement on the database at uri.
func execSQL(t *testing.T, uri, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql)
	if err != nil || tag.RowsAffected() == 0 {
		t.Fatalf("%s: %v (%d rows)", sql, err, tag.RowsAffected())
	}
}

// serveRefusesNaming runs serve on the example and wants it to refuse to
// start, its log naming each of names.
func serveRefusesNaming(t *testing.T, names ...string) {
	t.Helper()
	logs := newLogWatcher()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--reload-interval", "0"}, exampleConfig()...),
			strings.NewReader(""), &bytes.Buffer{}, logs)
	}()
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Fatalf("serve on the damaged store exited %d, want %d (refuse to start); log:\n%s", code, exitFailure, logs)
		}
	case <-logs.listening:
		cancel()
		<-exited
		t.Fatalf("serve started on a store that lacks an acknowledged change; log:\n%s", logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("serve neither started nor refused within 60s; log:\n%s", logs)
	}
	out := logs.String()
	for _, want := range names {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not name %q:\n%s", want, out)
		}
	}
}

// TestSignalAndRevalidationNotAppliedOnFullStore: with the stores' file
// system full (the trail on another), a pushed SET and a revalidation are
// recorded, fail to be stored and are answered 503 and 500; the trail
// then says they were not applied (signal.not_applied,
// dormancy.not_applied), so the PDP starts again without them: alice's
// old session and heidi stay as they were, and the transmitter may send
// the SET again.
func TestSignalAndRevalidationNotAppliedOnFullStore(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	fill, free := mountFull(t, data)
	storageEnv(t, data, filepath.Join(root, "trail"))

	s := startNorthbank(t)
	revoked := time.Now().Add(-time.Minute).Unix()
	oldSession := fmt.Sprintf(`{"purpose":"account_servicing","session":{"id":"s-old","auth_time":%d}}`, revoked-3600)
	alice := func(s *server) sigDecision { return s.sigAsk(t, "alice", "view_statements", "acc-alice", oldSession) }
	heidi := func(s *server) sigDecision {
		return s.sigAsk(t, "heidi", "view_statements", "acc-heidi", `{"purpose":"account_servicing"}`)
	}
	wantDecision(t, alice(s), true, nil, nil)
	wantDecision(t, heidi(s), false, []string{"revalidation_required"}, []string{"identity_revalidation"})

	fill()
	argv := []string{"signals", "push", "--server", s.URL, "--key", nbTransmitterKey, "session-revoked", "alice",
		"--jti", "rs-full-alice", "--event-time", strconv.FormatInt(revoked, 10)}
	if code, out, errOut := pdpRun(argv...); code == exitOK || !strings.Contains(out+errOut, "503") {
		t.Fatalf("push with the signal ledger's file system full: %d %s%s, want a 503", code, out, errOut)
	}
	fill()
	code, body := s.do(t, http.MethodPost, "/v1/dormancy/identities/user:heidi/revalidate", `{"actor":{"type":"staff","id":"kim"}}`, demoKey("backoffice")...)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "not in force") {
		t.Fatalf("revalidate with the store's file system full: %d %s, want a 503 saying it is not in force", code, body)
	}
	wantDecision(t, alice(s), true, nil, nil)
	s.stop(t)
	free()

	l, err := trail.OpenFile(filepath.Join(root, "trail"), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	err = l.Scan(0, l.Size(), func(r trail.Record) error {
		var body recorder.AdminBody
		if r.Kind == recorder.KindAdmin && json.Unmarshal(r.Body, &body) == nil &&
			(strings.HasPrefix(body.Action, "signal.") || strings.HasPrefix(body.Action, "dormancy.")) {
			actions = append(actions, body.Action)
		}
		return nil
	})
	_ = l.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"signal.receive", "signal.not_applied", "dormancy.revalidate", "dormancy.not_applied"}; !slices.Equal(actions, want) {
		t.Fatalf("the trail's signal and dormancy records: %v, want %v", actions, want)
	}

	s = startNorthbank(t)
	wantDecision(t, alice(s), true, nil, nil)
	wantDecision(t, heidi(s), false, []string{"revalidation_required"}, []string{"identity_revalidation"})
	s.push(t, argv[6:]...)
	wantDecision(t, alice(s), false, []string{"session_revoked"}, nil)
	s.stop(t)
	if code, out, _ := pdpRun(append([]string{"repair", "--check"}, exampleConfig()...)...); code != exitOK || !strings.Contains(out, "nothing to repair") {
		t.Fatalf("pdp repair --check: %d\n%s", code, out)
	}
}
