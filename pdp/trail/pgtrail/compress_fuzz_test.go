package pgtrail

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ciampdp/pdp/pdp/trail"
)

// fuzzDicts are an S2 and a zstd dictionary of the same sample.
func fuzzDicts(f *testing.F) []*trail.Dictionary {
	f.Helper()
	var sample []byte
	for i := range 40 {
		enc, err := trail.Canonical(mkBigRec(i))
		if err != nil {
			f.Fatal(err)
		}
		sample = append(sample, enc[len(seqPrefix):]...)
	}
	var out []*trail.Dictionary
	for _, c := range []string{trail.CompressionS2, trail.CompressionZstd} {
		d, _, err := trail.NewDictionary(c, sample, trail.DefaultDictionarySize, epoch)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// FuzzPostgresExpandRow: the decoder of a stored row never panics on any
// body and dict column; what it accepts starts with the row's own seq;
// and a compressed tail expands to the canonical record it came from.
func FuzzPostgresExpandRow(f *testing.F) {
	dicts := fuzzDicts(f)
	for i := range 3 {
		enc, _ := trail.Canonical(mkBigRec(100 + i))
		tail := enc[len(seqPrefix):]
		f.Add(dicts[i%2].Compress(tail), int64(7), int64(3), uint8(i))
		f.Add(tail, int64(7), int64(3), uint8(i))
	}
	f.Add([]byte{}, int64(1), int64(0), uint8(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, int64(9), int64(8), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, seq, dict int64, which uint8) {
		d := dicts[int(which)%len(dicts)]
		lookup := func(s int64) (*trail.Dictionary, error) {
			if s != 3 {
				return nil, trail.ErrDictionary
			}
			return d, nil
		}
		r := pgRow{seq: seq, body: data, dict: pgtype.Int8{Int64: dict, Valid: true}}
		canon, err := r.canonical(lookup)
		if err == nil && !bytes.HasPrefix(canon, []byte(`{"seq":`+strconv.FormatInt(seq, 10)+`,`)) {
			t.Fatalf("expansion %q does not start with seq %d", canon, seq)
		}
		// Round trip: data as a record's tail.
		if seq <= 3 {
			return
		}
		z := d.Compress(data)
		r = pgRow{seq: seq, body: z, dict: pgtype.Int8{Int64: 3, Valid: true}}
		canon, err = r.canonical(lookup)
		want := append([]byte(`{"seq":`+strconv.FormatInt(seq, 10)+`,`), data...)
		if err != nil || !bytes.Equal(canon, want) {
			t.Fatalf("round trip of %q: %q %v", data, canon, err)
		}
	})
}
