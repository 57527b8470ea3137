package main

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// pgTrailLayout counts a PostgreSQL trail's rows: dictionary records,
// compressed rows, plain rows, and the average stored body of each.
type pgTrailLayout struct {
	dicts, compressed, plain int64
	zBytes, plainBytes       int64
	lastDict                 bool // the last row is compressed
}

func readPGTrailLayout(t *testing.T, url string) pgTrailLayout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var l pgTrailLayout
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind = 'trail.dictionary'),
		count(*) FILTER (WHERE dict IS NOT NULL), count(*) FILTER (WHERE dict IS NULL AND kind <> 'trail.dictionary'),
		coalesce(avg(length(body)) FILTER (WHERE dict IS NOT NULL), 0)::bigint,
		coalesce(avg(length(body)) FILTER (WHERE dict IS NULL AND kind = 'decision'), 0)::bigint,
		coalesce((SELECT dict IS NOT NULL FROM trail_records ORDER BY seq DESC LIMIT 1), false)
		FROM trail_records`).Scan(&l.dicts, &l.compressed, &l.plain, &l.zBytes, &l.plainBytes, &l.lastDict); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPostgresTrailCompressionOverHTTP: two PDPs on one PostgreSQL trail
// with the default trail.compression (s2) answer decisions at once: the
// trail gets one dictionary record and compressed rows after it; pdp log
// verify, log prove, explain, replay and audit query read them; a restart
// with zstd goes on with the trail's one dictionary, and one with
// compression off stores plain rows beside the compressed ones.
func TestPostgresTrailCompressionOverHTTP(t *testing.T) {
	url := testDatabase(t)
	key, skey := trailKeyFile(t)
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", url)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)

	askAll := func(urls []string, from, n int) []string {
		t.Helper()
		ids := make([]string, n)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					a, err := ask(urls[i%len(urls)], from+i)
					if err != nil || !a.Decision {
						t.Errorf("ask %d: %v %+v", from+i, err, a)
						return
					}
					ids[i] = a.Context.DecisionID
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		return ids
	}

	url1, stop1 := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "a"), todoDir)
	url2, stop2 := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "b"), todoDir)
	ids := askAll([]string{url1, url2}, 0, 200)
	stop1()
	stop2()
	lay := readPGTrailLayout(t, url)
	t.Logf("after two replicas: %+v", lay)
	if lay.dicts != 1 || lay.compressed == 0 || lay.plain == 0 || !lay.lastDict {
		t.Fatalf("want one dictionary, plain rows before it and compressed rows after: %+v", lay)
	}
	if lay.zBytes*3 > lay.plainBytes {
		t.Errorf("compressed rows average %d bytes, plain decisions %d: want at least 3x smaller", lay.zBytes, lay.plainBytes)
	}

	code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitOK || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	last := ids[len(ids)-1]                          // asked last: stored compressed
	proveByLog(t, vkey, "--postgres-url", url, last) // a compressed decision
	if code, out, _ = pdpRun("explain", "--postgres-url", url, last); code != exitOK || !strings.Contains(out, "ALLOWED") {
		t.Fatalf("explain a compressed decision: %d %s", code, out)
	}
	if code, out, errOut = pdpRun("replay", "--postgres-url", url, "--quiet"); code != exitOK || !strings.Contains(out, "200 reproduced") {
		t.Fatalf("replay: %d %s %s", code, out, errOut)
	}
	if code, out, errOut = pdpRun("audit", "query", "--postgres-url", url, "--result", "allow"); code != exitOK || !strings.Contains(out, "200 matching") {
		t.Fatalf("audit query: %d %s %s", code, out, errOut)
	}

	// zstd: the trail's one (S2) dictionary goes on being used.
	t.Setenv("PDP_TRAIL_COMPRESSION", "zstd")
	url1, stop1 = serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "c"), todoDir)
	askAll([]string{url1}, 1000, 20)
	stop1()
	if l2 := readPGTrailLayout(t, url); l2.dicts != 1 || l2.compressed < lay.compressed+20 || !l2.lastDict {
		t.Fatalf("after a restart with zstd: %+v", l2)
	}

	// Compression off: new rows plain, the old ones still read (the steps
	// above ran with the default, s2, then zstd).
	t.Setenv("PDP_TRAIL_COMPRESSION", "off") // default off because this step checks compressed rows stay readable when an operator turns compression off
	url1, stop1 = serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "d"), todoDir)
	askAll([]string{url1}, 2000, 10)
	stop1()
	if l3 := readPGTrailLayout(t, url); l3.lastDict || l3.plain < lay.plain+10 {
		t.Fatalf("after a restart with compression off: %+v", l3)
	}
	if code, out, errOut = logRun("verify", "--postgres-url", url, "--key", vkey); code != exitOK || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify after the restarts: %d %s %s", code, out, errOut)
	}
	if code, out, errOut = pdpRun("replay", "--postgres-url", url, "--quiet"); code != exitOK || !strings.Contains(out, "230 reproduced") {
		t.Fatalf("replay after the restarts: %d %s %s", code, out, errOut)
	}
}

// trailKeyFile writes a new trail signing key (signed-note, origin
// pdp/trail) to a file for trail.signing_key_file and returns its path
// and the key.
func trailKeyFile(t *testing.T) (path, skey string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "trail.key")
	skey, _, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, skey
}
