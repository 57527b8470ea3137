package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestNorthbankBytesPerDecision measures what a trail of Northbank
// decisions (the policy suites' cases and batches: delegation, consent,
// facts; each with a fresh id, time and duration) costs on disk today,
// and what two ways of shrinking it would leave, to decide by
// measurement (issue 15):
//
//   - content-addressed snapshots: every entity of the Cedar input, the
//     facts, the delegation proof and the consent fact stored once, by
//     hash, and referenced from the record (a 45-byte reference);
//   - zstd over each batch of 1,024 records (CPU per record measured).
//
// PDP_TRAIL_BYTES sets the number of decisions (100000 for the figures in
// BENCHMARKS.md; default 5000).
func TestNorthbankBytesPerDecision(t *testing.T) {
	n := trailBytesN(t)
	rc := record(t)
	bodies := mixBodies(t, rc)

	dir := t.TempDir()
	l, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var (
		batch    []trail.Record
		refBytes int64              // records with references instead of parts
		parts    = map[string]int{} // unique parts: hash → size
		partN    int64
	)
	for i := range n {
		b, body := mixDecision(t, bodies, i, t0)
		batch = append(batch, trail.Record{Kind: recorder.KindDecision, ID: b.Decision.ID, Time: b.Decision.Time, Body: body})
		refBytes += int64(len(body)) + snapshotParts(t, b, parts, &partN)
		if len(batch) == 1024 || i == n-1 {
			if _, err := l.Append(context.Background(), batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := l.Close(); err != nil { // Close cuts the preallocated zeros off
		t.Fatal(err)
	}
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	recs, hashes := size("records.log"), size("hashes.bin")
	var bodyBytes int64
	var frames [][]byte
	raw, err := os.ReadFile(filepath.Join(dir, "records.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range bytes.SplitAfter(raw, []byte("\n")) {
		if len(fr) > 0 {
			frames = append(frames, fr)
		}
	}
	for _, b := range bodies {
		bb, _ := json.Marshal(b)
		bodyBytes += int64(len(bb))
	}
	framing := float64(recs)/float64(n) - float64(bodyBytes)/float64(len(bodies))
	var partBytes int64
	for _, sz := range parts {
		partBytes += int64(sz) + int64(framing) + 64 // each snapshot a record of its own, in the tree
	}
	snapshot := (float64(refBytes) + float64(partBytes) + framing*float64(n)) / float64(n)

	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	var zBytes int64
	start := time.Now()
	for i := 0; i < len(frames); i += 1024 {
		chunk := bytes.Join(frames[i:min(i+1024, len(frames))], nil)
		zBytes += int64(len(enc.EncodeAll(chunk, nil)))
	}
	zCPU := time.Since(start) / time.Duration(len(frames))
	// The mix repeats its few distinct decisions within a batch, which
	// flatters zstd: the distinct ones alone, once each, bound it from the
	// other side.
	distinct := bytes.Join(frames[:min(len(bodies), len(frames))], nil)
	zDistinct := float64(len(distinct)) / float64(len(enc.EncodeAll(distinct, nil)))
	var req, ctxb, ents, facts, rest float64
	for _, b := range bodies {
		all, _ := json.Marshal(b)
		r, _ := json.Marshal(b.Request)
		c, _ := json.Marshal(b.Decision.Input.Context)
		e, _ := json.Marshal(b.Decision.Input.Entities)
		f, _ := json.Marshal(b.Decision.Facts)
		req, ctxb, ents, facts = req+float64(len(r)), ctxb+float64(len(c)), ents+float64(len(e)), facts+float64(len(f))
		rest += float64(len(all) - len(r) - len(c) - len(e) - len(f))
	}
	k := float64(len(bodies))
	t.Logf("body of %.0f bytes on average: request %.0f, input context %.0f, input entities %.0f, facts %.0f, the rest (ids, time, policies, reasons, version, delegation, consent, keys) %.0f",
		float64(bodyBytes)/k, req/k, ctxb/k, ents/k, facts/k, rest/k)

	t.Logf("Northbank mix: %d decisions cycling %d distinct ones (suites' cases and batches under 2 versions)", n, len(bodies))
	t.Logf("today: %.0f bytes per decision (records.log %.0f + hashes.bin %.0f)", float64(recs+hashes)/float64(n), float64(recs)/float64(n), float64(hashes)/float64(n))
	t.Logf("snapshots (entities, facts, delegation, consent by hash): %.0f bytes per decision + hashes.bin %.0f; %d snapshots (%d bytes) for %d part references",
		snapshot, float64(hashes)/float64(n)+64*float64(len(parts))/float64(n), len(parts), partBytes, partN)
	t.Logf("zstd per 1,024-record batch (SpeedDefault): records.log %.0f bytes per decision (%.1fx) + hashes.bin %.0f; %v per record to compress; the %d distinct records alone compress %.1fx",
		float64(zBytes)/float64(n), float64(recs)/float64(zBytes), float64(hashes)/float64(n), zCPU, len(bodies), zDistinct)
}

// snapshotParts adds b's snapshot parts to parts and returns by how many
// bytes its record changes when each part is replaced by a reference.
func snapshotParts(t *testing.T, b recorder.DecisionBody, parts map[string]int, count *int64) int64 {
	const ref = 45 // "<43 characters of base64url SHA-256>"
	var delta int64
	add := func(v any) {
		if v == nil {
			return
		}
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		parts[base64.RawURLEncoding.EncodeToString(sum[:])] = len(raw)
		delta += ref - int64(len(raw))
		*count++
	}
	for _, e := range b.Decision.Input.Entities {
		add(e)
	}
	if len(b.Decision.Facts) > 0 {
		add(b.Decision.Facts)
	}
	if b.Decision.Delegation != nil {
		add(b.Decision.Delegation)
	}
	if b.Decision.Consent != nil {
		add(b.Decision.Consent)
	}
	return delta
}

// trailBytesN is the number of decisions the bytes-per-decision tests
// write: PDP_TRAIL_BYTES, default 5000.
func trailBytesN(t *testing.T) int {
	t.Helper()
	n := 5000
	if v := os.Getenv("PDP_TRAIL_BYTES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("PDP_TRAIL_BYTES=%q", v)
		}
	}
	return n
}

// mixBodies is the Northbank mix: the decision bodies rc recorded.
func mixBodies(t *testing.T, rc *recorded) []recorder.DecisionBody {
	t.Helper()
	var bodies []recorder.DecisionBody
	if err := rc.log.Scan(0, rc.log.Size(), func(r trail.Record) error {
		if r.Kind != recorder.KindDecision {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.UseNumber()
		var b recorder.DecisionBody
		if err := dec.Decode(&b); err != nil {
			return err
		}
		bodies = append(bodies, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return bodies
}

// mixDecision is the i-th decision of the mix: a body of bodies cycled,
// with an id, time and duration of its own, and its JSON.
func mixDecision(t *testing.T, bodies []recorder.DecisionBody, i int, t0 time.Time) (recorder.DecisionBody, []byte) {
	t.Helper()
	b := bodies[i%len(bodies)]
	id, _ := uuid.NewV7()
	b.Decision.ID = id.String()
	b.Decision.Time = t0.Add(time.Duration(i) * 731 * time.Microsecond)
	b.Decision.Duration = time.Duration(20000 + i%9973)
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, body
}
