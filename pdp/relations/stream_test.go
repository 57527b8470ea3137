package relations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestScanRelationships(t *testing.T) {
	text := `# owners
account:a1#owner@user:alice

   // a comment after blanks
  account:a2#delegate@user:bob[within_limit:{"limit":100}]
group:g#member@user:carol
account:a3#viewer@group:g#member
`
	var got []string
	for r, err := range ScanRelationships(strings.NewReader(text)) {
		if err != nil {
			t.Fatalf("error: %v", err)
		}
		got = append(got, r.String())
	}
	want := []string{
		"account:a1#owner@user:alice",
		"account:a2#delegate@user:bob[within_limit]",
		"group:g#member@user:carol",
		"account:a3#viewer@group:g#member",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestScanRelationshipsStopsAtTheBadLine(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		line       int
		good       int
	}{
		{"bad relationship", "account:a1#owner@user:alice\n\n# c\naccount:a2#owner\naccount:a3#owner@user:x\n", 4, 1},
		{"bad first line", "nonsense\n", 1, 0},
		{"too long", "account:a1#owner@user:alice\naccount:a2#owner@user:" + strings.Repeat("x", MaxLineLength) + "\n", 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, errs := 0, 0
			var lerr *LineError
			for _, err := range ScanRelationships(strings.NewReader(tc.text)) {
				if err == nil {
					if errs > 0 {
						t.Fatal("a relationship after the error")
					}
					good++
					continue
				}
				errs++
				if !errors.As(err, &lerr) {
					t.Fatalf("error %v is not a *LineError", err)
				}
			}
			if errs != 1 || lerr.Line != tc.line || good != tc.good {
				t.Fatalf("%d good, %d errors, line %v; want %d good, 1 error on line %d", good, errs, lerr, tc.good, tc.line)
			}
			if !strings.HasPrefix(lerr.Error(), fmt.Sprintf("line %d: ", tc.line)) {
				t.Errorf("message %q does not start with the line", lerr)
			}
		})
	}
}

// failingReader returns its text, then an error.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("disk on fire")
	}
	return n, err
}

func TestScanRelationshipsReadError(t *testing.T) {
	var last error
	n := 0
	for _, err := range ScanRelationships(failingReader{strings.NewReader("account:a1#owner@user:alice\n")}) {
		n++
		last = err
	}
	if n != 2 || last == nil || !strings.Contains(last.Error(), "disk on fire") {
		t.Fatalf("%d items, last error %v; want the relationship then the read error", n, last)
	}
}

// TestImportRelationshipsFromAborts: an error part way through the
// sequence, after several batches went out, stores nothing of its
// transaction; with PerTransaction, the transactions committed before it
// stay, and the error says how many relationships they hold.
func TestImportRelationshipsFromAborts(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		ctx := context.Background()
		lines := func(prefix string, from, to int) string {
			var b strings.Builder
			for i := from; i < to; i++ {
				fmt.Fprintf(&b, "account:%s%d#owner@user:u%d\n", prefix, i, i)
			}
			return b.String()
		}
		owners := func(prefix string) int {
			rels, err := s.ReadRelationships(ctx, Filter{ResourceType: "account", Relation: "owner"})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range rels {
				if strings.HasPrefix(r.Resource.ID, prefix) {
					n++
				}
			}
			return n
		}
		for _, tc := range []struct {
			name           string
			perTransaction int
			committed      uint64
		}{
			{"one transaction", 0, 0},
			{"transactions of 4", 4, 8},
		} {
			t.Run(tc.name, func(t *testing.T) {
				prefix := fmt.Sprintf("imp%d-", tc.perTransaction)
				bad := lines(prefix, 0, 10) + "account:x#owner@\n" + lines(prefix, 11, 12)
				sent := 0
				_, err := s.ImportRelationshipsFrom(ctx, ScanRelationships(strings.NewReader(bad)),
					ImportOptions{Batch: 3, PerTransaction: tc.perTransaction, Progress: func(n int) { sent = n }})
				var lerr *LineError
				var ierr *ImportError
				if !errors.As(err, &lerr) || lerr.Line != 11 || !errors.As(err, &ierr) {
					t.Fatalf("import error %v, want an *ImportError of a *LineError on line 11", err)
				}
				if ierr.Committed != tc.committed {
					t.Fatalf("%d committed, want %d", ierr.Committed, tc.committed)
				}
				if sent < 8 {
					t.Fatalf("%d sent before the error, want at least 8", sent)
				}
				if got := owners(prefix); got != int(tc.committed) {
					t.Fatalf("after the failed import: %d relationships stored, want %d", got, tc.committed)
				}
				// The rest, in transactions of 3.
				res, err := s.ImportRelationshipsFrom(ctx, ScanRelationships(strings.NewReader(lines(prefix, int(tc.committed), 12))),
					ImportOptions{Batch: 2, PerTransaction: 3})
				if err != nil || res.Loaded != 12-tc.committed || res.Revision != s.Floor() {
					t.Fatalf("import of the rest: %+v, %v", res, err)
				}
				if got := owners(prefix); got != 12 {
					t.Fatalf("%d relationships stored, want 12", got)
				}
				if r := mustCheck(t, s, Check{Resource: account(prefix + "7"), Permission: "manage", Subject: user("u7")}); !r.Items[0].Has {
					t.Fatal("an imported owner does not manage")
				}
			})
		}
	})
}
