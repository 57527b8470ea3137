package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// trailFrames returns the payloads of the frames in a trail directory's
// records file, as stored.
func trailFrames(t *testing.T, dir string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "records.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		if len(line) < 18 {
			t.Fatalf("short frame %q", line)
		}
		out = append(out, line[18:])
	}
	return out
}

// TestTrailCompressionOverHTTP: a PDP with the default trail.compression
// (s2) stores its first records as they are, then a dictionary record,
// then compressed records; the trail verifies, a compressed decision is
// proven with the served key alone; after a restart with zstd a zstd
// dictionary is gathered and used, and after one with compression off the
// old records read back and new ones are stored uncompressed. A bad value
// stops the start with a clear message.
func TestTrailCompressionOverHTTP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	url, stop := serveTrail(t, pdpserver.TrailSync, dir)
	res, err := http.Get(url + "/v1/trail/key")
	if err != nil {
		t.Fatal(err)
	}
	keyData, _ := io.ReadAll(res.Body)
	res.Body.Close()
	vkey := strings.TrimSpace(string(keyData))
	var ids []string
	for i := range 300 {
		a, err := ask(url, i)
		if err != nil || !a.Decision {
			t.Fatalf("ask %d: %v %+v", i, err, a)
		}
		ids = append(ids, a.Context.DecisionID)
	}
	stop()

	var plain, compressed, dicts int
	var plainBytes, zBytes int
	for _, p := range trailFrames(t, dir) {
		switch {
		case p[0] == 'z':
			compressed++
			zBytes += len(p)
		case bytes.Contains(p, []byte(`"kind":"`+trail.KindDictionary+`"`)):
			dicts++
		default:
			plain++
			plainBytes += len(p)
		}
	}
	if dicts != 1 || plain == 0 || compressed == 0 {
		t.Fatalf("%d plain, %d compressed, %d dictionary records: want all three", plain, compressed, dicts)
	}
	t.Logf("%d plain records (%d bytes on average), a dictionary, %d compressed (%d bytes on average)",
		plain, plainBytes/plain, compressed, zBytes/compressed)
	if zBytes/compressed*3 > plainBytes/plain {
		t.Errorf("compressed records average %d bytes, plain ones %d: want at least 3x smaller", zBytes/compressed, plainBytes/plain)
	}

	if code, out, errOut := logRun("verify", "--dir", dir, "--key", vkey); code != exitOK || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("verify: %d\n%s%s", code, out, errOut)
	}
	proveByLog(t, vkey, "--dir", dir, ids[len(ids)-1]) // a compressed decision

	// zstd: the same trail; a zstd dictionary is gathered from the records
	// written after the restart, and the records after it use it.
	// default changed because this step checks that a trail written with
	// the default codec goes on with the other one.
	t.Setenv("PDP_TRAIL_COMPRESSION", "zstd")
	url, stop = serveTrail(t, pdpserver.TrailSync, dir)
	for i := range 300 {
		a, err := ask(url, 2000+i)
		if err != nil || !a.Decision {
			t.Fatalf("ask %d with zstd: %v %+v", i, err, a)
		}
		ids = append(ids, a.Context.DecisionID)
	}
	stop()
	var codecs []string
	for _, p := range trailFrames(t, dir) {
		if bytes.Contains(p, []byte(`"kind":"`+trail.KindDictionary+`"`)) {
			var d struct {
				Body struct {
					Codec string `json:"codec"`
				} `json:"body"`
			}
			if err := json.Unmarshal(p, &d); err != nil {
				t.Fatal(err)
			}
			codecs = append(codecs, d.Body.Codec)
		}
	}
	if want := []string{"s2-dict", "zstd-raw"}; !slices.Equal(codecs, want) {
		t.Fatalf("dictionaries %v, want %v", codecs, want)
	}
	if frames := trailFrames(t, dir); frames[len(frames)-1][0] != 'z' {
		t.Fatal("zstd: the last record is not stored compressed")
	}

	// Compression off: the same trail, old records readable, new ones plain
	// (the steps above ran with the default, s2).
	t.Setenv("PDP_TRAIL_COMPRESSION", "off") // default off because this step checks a compressed trail stays readable when an operator turns compression off
	url, stop = serveTrail(t, pdpserver.TrailSync, dir)
	a, err := ask(url, 1000)
	if err != nil || !a.Decision {
		t.Fatalf("ask after restart: %v %+v", err, a)
	}
	stop()
	frames := trailFrames(t, dir)
	if last := frames[len(frames)-1]; last[0] == 'z' {
		t.Fatal("compression off: the last record is stored compressed")
	}
	if code, out, errOut := logRun("verify", "--dir", dir, "--key", vkey); code != exitOK || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("verify after restart: %d\n%s%s", code, out, errOut)
	}
	got := trailIDs(t, dir)
	for _, id := range append(ids, a.Context.DecisionID) {
		if !got[id] {
			t.Fatalf("decision %s is not in the trail", id)
		}
	}

	t.Setenv("PDP_TRAIL_COMPRESSION", "lz4")
	var stderr strings.Builder
	code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--dir", todoDir}, strings.NewReader(""), io.Discard, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "trail.compression must be s2, zstd or off") {
		t.Fatalf("trail.compression lz4: exit %d, %s", code, stderr.String())
	}
}
