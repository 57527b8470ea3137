package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/changefeed/pgfeed"
)

// TestRelationsImportReachesReplicas: `pdp relations import` on the
// PostgreSQL store publishes the import to the change feed the replicas
// share, and returns once a live replica (here one in this process) has
// brought it into its own feed.
func TestRelationsImportReachesReplicas(t *testing.T) {
	uri := testDatabase(t)
	local := changefeed.NewChangesSince(time.Second, time.Now().Add(-time.Hour))
	feed, err := pgfeed.Open(t.Context(), uri, local, pgfeed.Options{Replica: "replica-in-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.Close)
	before := local.Seq()
	zed := filepath.Join(t.TempDir(), "s.zed")
	writeFile(t, zed, importSchema)
	r := runCLI(t, "", "relations", "import", "--config", postgresConfig(t, uri), "--schema", zed, relationshipsFile(t, "imp-", 10))
	if r.code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "every live PDP replica applied the import (change ") {
		t.Errorf("stdout does not confirm the replicas applied it:\n%s", r.stdout)
	}
	if local.Seq() <= before {
		t.Errorf("the replica's feed is at %d, as before the import: it did not apply it", local.Seq())
	}
}
