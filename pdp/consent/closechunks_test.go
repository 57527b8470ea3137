package consent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// failActivityInserts makes PostgreSQL fail every activity write of the
// subject named poison (a trigger, named after the test's suffix, that
// raises; dropped by the function returned, or at cleanup).
func failActivityInserts(t *testing.T, sfx, poison string) (lift func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgURI(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := "pdp_test_fail_activity" + strings.ReplaceAll(sfx, "-", "_")
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.subject = '%[2]s' THEN RAISE EXCEPTION 'test: activity of %[2]s refused'; END IF;
			RETURN NEW;
		END $$`, name, poison)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TRIGGER %[1]s BEFORE INSERT OR UPDATE ON pdp_consent_activity
		FOR EACH ROW EXECUTE FUNCTION %[1]s()`, name)); err != nil {
		t.Fatal(err)
	}
	lift = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgURI(t))
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP TRIGGER IF EXISTS %[1]s ON pdp_consent_activity; DROP FUNCTION IF EXISTS %[1]s()`, name)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	t.Cleanup(lift)
	return lift
}

// TestCloseLogsOnlyUnstoredChunks: on PostgreSQL, Close's final flush
// writes the activity in chunks (of 2 here), in the order of the
// subjects' names, each committed on its own; when a later chunk fails
// (a trigger refuses one subject), the chunks before it are stored and
// not logged, and only the marks of the failed chunk and of those after
// it are logged as not stored at close. Close makes one attempt.
func TestCloseLogsOnlyUnstoredChunks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		touched  int
		poison   int // the subject refused, by its place in name order; -1: none
		unstored []int
	}{
		{"the third chunk fails: the first two are stored", 7, 4, []int{4, 5, 6}},
		{"the last chunk fails", 7, 6, []int{6}},
		{"the first chunk fails: nothing stored, all logged", 5, 1, []int{0, 1, 2, 3, 4}},
		{"no chunk fails: nothing logged", 5, -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, sfx := openPostgresT(t)
			st.(*PostgresStore).activityChunk = 2
			var logs syncBuffer
			e := newLenv(t, st, sfx, func(c *LedgerConfig) {
				c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
				c.ActivityFlushInterval = time.Hour // only Close flushes
			})
			refs := make([]Ref, tc.touched)
			want := map[string]time.Time{}
			for i := range refs {
				refs[i] = e.user(fmt.Sprintf("chunked-%02d", i))
				at := ledgerToday.Add(-time.Duration(i) * time.Minute).UTC()
				e.l.Touch(refs[i], at)
				want[refs[i].String()] = at
			}
			if tc.poison >= 0 {
				failActivityInserts(t, sfx, refs[tc.poison].String())
			}
			err := e.l.Close()
			if (err != nil) != (tc.poison >= 0) {
				t.Fatalf("Close: %v", err)
			}
			var logged []string
			for _, l := range unstoredLines(t, logs.String()) {
				if l.Level != "ERROR" || !want[l.Subject].Equal(l.At) {
					t.Errorf("logged %+v, want an error with the subject's time %v", l, want[l.Subject])
				}
				logged = append(logged, l.Subject)
			}
			var wantLogged []string
			for _, i := range tc.unstored {
				wantLogged = append(wantLogged, refs[i].String())
			}
			if !slices.Equal(logged, wantLogged) {
				t.Fatalf("logged as not stored %v, want %v", logged, wantLogged)
			}
			stored, err := st.Activities(context.Background(), refs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range refs {
				_, ok := stored[r]
				if ok == slices.Contains(tc.unstored, i) {
					t.Errorf("%s stored %v, logged %v: want exactly one", r, ok, !ok)
				}
				if ok && !stored[r].Equal(want[r.String()]) {
					t.Errorf("%s stored at %v, want %v", r, stored[r], want[r.String()])
				}
			}
		})
	}
}

// TestFlushRequeuesOnlyUnstoredChunks: a periodic flush whose third
// chunk fails keeps only the marks of that chunk and the next for the
// next flush, which stores them once the database takes them again;
// Close then has nothing to log.
func TestFlushRequeuesOnlyUnstoredChunks(t *testing.T) {
	st, sfx := openPostgresT(t)
	st.(*PostgresStore).activityChunk = 2
	var logs syncBuffer
	e := newLenv(t, st, sfx, func(c *LedgerConfig) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		c.ActivityFlushInterval = time.Hour
	})
	refs := make([]Ref, 7)
	for i := range refs {
		refs[i] = e.user(fmt.Sprintf("requeued-%02d", i))
		e.l.Touch(refs[i], ledgerToday.Add(-time.Duration(i)*time.Minute))
	}
	lift := failActivityInserts(t, sfx, refs[4].String())
	if err := e.l.FlushActivity(context.Background()); err == nil {
		t.Fatal("a flush with a refused subject succeeded")
	}
	e.l.amu.Lock()
	queued := slices.SortedFunc(maps.Keys(e.l.dirty), func(a, b Ref) int { return strings.Compare(a.String(), b.String()) })
	e.l.amu.Unlock()
	if want := refs[4:]; !slices.Equal(queued, want) {
		t.Fatalf("queued for the next flush %v, want %v", queued, want)
	}
	lift()
	if err := e.l.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, err := st.Activities(context.Background(), refs)
	if err != nil || len(stored) != len(refs) {
		t.Fatalf("stored %d of %d: %v", len(stored), len(refs), err)
	}
	if err := e.l.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := unstoredLines(t, logs.String()); len(lines) != 0 {
		t.Fatalf("logged %v, want nothing", lines)
	}
}
