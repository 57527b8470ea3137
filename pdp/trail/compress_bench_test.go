package trail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// decisionRecords returns n realistic decision bodies (testdata), each
// with its own id, as the recorder writes them.
func decisionRecords(tb testing.TB, n int) []Record {
	tb.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "decision_body.json"))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]Record, n)
	for i := range out {
		id := fmt.Sprintf("0193a5c2-7e41-7c3b-9d2e-%012x", i)
		b := []byte(fmt.Sprintf(`{"n":%q,"d":%s}`, id, body))
		out[i] = Record{Kind: "decision", ID: id, Time: epoch.Add(time.Duration(i) * time.Millisecond), Body: b}
	}
	return out
}

// BenchmarkCompressRecord is what compression adds to an append, per
// record, on the caller's goroutine: compress the canonical tail and
// stuff it, per codec.
func BenchmarkCompressRecord(b *testing.B) {
	for _, codec := range codecs {
		b.Run(codec, func(b *testing.B) {
			recs := decisionRecords(b, 64)
			var sample []byte
			for _, r := range recs {
				tail, _ := appendCanonicalTail(nil, r)
				sample = append(sample, tail...)
			}
			code := dictCodeOf(codec)
			w, err := newDictCodec(code, dictionaryContent(code, sample, len(sample)), true)
			if err != nil {
				b.Fatal(err)
			}
			later := decisionRecords(b, 1256)[1000:]
			tails := make([][]byte, len(later))
			for i, r := range later {
				tails[i], _ = appendCanonicalTail(nil, r)
			}
			b.ReportAllocs()
			var in, out int
			i := 0
			for b.Loop() {
				z := w.appendCompressed(nil, tails[i%len(tails)])
				in, out = in+len(tails[i%len(tails)]), out+len(z)
				i++
			}
			b.ReportMetric(float64(in)/float64(out), "ratio")
		})
	}
}

// BenchmarkVerifyCompressed verifies 100,000 realistic records stored
// either way: with zstd, verify decompresses every one.
func BenchmarkVerifyCompressed(b *testing.B) {
	for _, mode := range append([]string{CompressionOff}, codecs...) {
		b.Run(mode, func(b *testing.B) {
			s, vkey := newKeys(b)
			l, err := OpenFile(b.TempDir(), FileOptions{Signer: s, Compression: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			const n = 100000
			recs := decisionRecords(b, 1000)
			for range n / len(recs) {
				if _, err := l.Append(context.Background(), recs...); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := l.Checkpoint(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				rep, err := l.Verify(context.Background(), vkey, 0, l.Size())
				if err != nil || !rep.OK {
					b.Fatalf("%v %+v", err, rep)
				}
			}
			b.ReportMetric(float64(int(l.Size())*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkExpandRecord is what a reader (Scan, Verify, Prune) pays per
// compressed record to get its canonical bytes back.
func BenchmarkExpandRecord(b *testing.B) {
	for _, codec := range codecs {
		for _, size := range []int{32 << 10, DefaultDictionarySize} {
			b.Run(fmt.Sprintf("%s/dict=%dKiB", codec, size>>10), func(b *testing.B) {
				recs := decisionRecords(b, 1256)
				var sample []byte
				for _, r := range recs[:1000] {
					tail, _ := appendCanonicalTail(nil, r)
					if len(sample)+len(tail) > size {
						break
					}
					sample = append(sample, tail...)
				}
				code := dictCodeOf(codec)
				content := dictionaryContent(code, sample, size)
				w, err := newDictCodec(code, content, true)
				if err != nil {
					b.Fatal(err)
				}
				dictRec, err := dictionaryRecord(code, content, Record{Time: epoch})
				if err != nil {
					b.Fatal(err)
				}
				canon, _ := Canonical(dictRec)
				var dicts dictSet
				if _, _, ok := dicts.see(canon); !ok {
					b.Fatal("dictionary not registered")
				}
				var payloads [][]byte
				for i, r := range recs[1000:] {
					tail, _ := appendCanonicalTail(nil, r)
					payloads = append(payloads, appendZPayload(nil, uint64(i+1), 0, w.appendCompressed(nil, tail)))
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := expand(payloads[i%len(payloads)], &dicts); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
