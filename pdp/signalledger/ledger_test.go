package signalledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/signals"
)

const (
	testIss = "https://risk.northbank.example/"
	idpIss  = "https://idp.northbank.example/"
)

var testNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func northbankRegistry(t testing.TB) *signals.Registry {
	t.Helper()
	data, err := os.ReadFile("../../examples/northbank/schema/signals.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := signals.ParseRegistry(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// set is a verified SET (the verifier is tested in package signals) with
// one event of type (short name or URI) for subject.
func set(jti, typ string, subject *signals.SubjectID) *signals.SET {
	uri, ok := signals.TypeURI(typ)
	if !ok {
		uri = typ
	}
	return &signals.SET{Issuer: testIss, JTI: jti, IssuedAt: testNow,
		Events: []signals.SETEvent{{Type: uri, Subject: subject, Time: testNow, Payload: []byte("{}")}}}
}

func bobID() *signals.SubjectID {
	return &signals.SubjectID{Format: signals.FormatIssSub, Iss: idpIss, Sub: "bob"}
}

type failingJournal struct{ err error }

func (j *failingJournal) RecordSignal(context.Context, string, string, []signals.Event) error {
	return j.err
}

type countingPublisher struct{ n int }

func (p *countingPublisher) Publish(context.Context, string) (uint64, error) {
	p.n++
	return uint64(p.n), nil
}

// stores opens each store kind once per test: the file store, and
// PostgreSQL when PDP_TEST_POSTGRES_URL is set.
func stores(t *testing.T) map[string]func(t *testing.T) Store {
	out := map[string]func(t *testing.T) Store{
		"file": func(t *testing.T) Store {
			path := filepath.Join(t.TempDir(), "signals.jsonl")
			s, err := OpenFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
	if uri := os.Getenv("PDP_TEST_POSTGRES_URL"); uri != "" {
		out["postgres"] = func(t *testing.T) Store {
			ctx := context.Background()
			s, err := OpenPostgres(ctx, uri)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, "TRUNCATE pdp_signal_events"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	}
	return out
}

func TestLedger(t *testing.T) {
	reg := northbankRegistry(t)
	ctx := context.Background()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			pub := &countingPublisher{}
			l, err := NewLedger(ctx, LedgerConfig{Store: st, Registry: func() *signals.Registry { return reg }, Publisher: pub})
			if err != nil {
				t.Fatal(err)
			}
			first := set("j-1", "credential-compromise", bobID())
			evs, err := l.Receive(ctx, first)
			if err != nil || len(evs) != 1 || evs[0].Entity != `User::"bob"` || evs[0].Position <= 0 {
				t.Fatalf("receive: %v %+v", err, evs)
			}
			if _, err := l.Receive(ctx, first); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("replayed jti: %v", err)
			}
			if got := l.For(`User::"bob"`); len(got) != 1 || pub.n != 1 {
				t.Fatalf("after a replay: %d events, %d publishes", len(got), pub.n)
			}
			// Unknown event types and unmapped subjects are stored, not indexed.
			odd := set("j-2", "urn:example:odd", &signals.SubjectID{Format: signals.FormatEmail, Email: "x@y"})
			if evs, err := l.Receive(ctx, odd); err != nil || evs[0].Entity != "" {
				t.Fatalf("odd: %v %+v", err, evs)
			}
			// A journal that fails stores nothing.
			l.cfg.Journal = &failingJournal{errors.New("trail down")}
			third := set("j-3", "account-disabled", bobID())
			if _, err := l.Receive(ctx, third); !errors.Is(err, ErrNotRecorded) {
				t.Fatalf("journal failure: %v", err)
			}
			if got, _ := st.Since(ctx, 0); len(got) != 2 {
				t.Fatalf("stored %d events, want 2", len(got))
			}
			// A second ledger over the same store (a restart, or another
			// replica) sees what was stored and refuses the replay.
			l2, err := NewLedger(ctx, LedgerConfig{Store: st, Registry: func() *signals.Registry { return reg }})
			if err != nil {
				t.Fatal(err)
			}
			if got := l2.For(`User::"bob"`); len(got) != 1 {
				t.Fatalf("reopened: %d events", len(got))
			}
			if _, err := l2.Receive(ctx, first); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("replay after reopen: %v", err)
			}
		})
	}
}

func TestFileStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	s, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), []signals.Event{{Transmitter: testIss, JTI: "a", Type: "t"}, {Transmitter: testIss, JTI: "a", Type: "u"}}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s, err = OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := s.Since(context.Background(), 0)
	if len(got) != 2 || got[1].Position != 2 {
		t.Fatalf("reopened: %+v", got)
	}
	if _, err := s.Append(context.Background(), []signals.Event{{Transmitter: testIss, JTI: "a", Type: "t"}}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
}
