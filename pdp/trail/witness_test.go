package trail

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// witnessedLog is a log of n records whose checkpoints at sizes were
// signed with signer, and the checkpoints as a witness file.
func witnessedLog(t *testing.T, opts FileOptions, n int, sizes ...int) (*FileLog, [][]byte) {
	t.Helper()
	l := openLog(t, t.TempDir(), opts)
	var cps [][]byte
	at := 0
	for _, s := range sizes {
		appendN(t, l, at, s-at)
		at = s
		cp, err := l.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	appendN(t, l, at, n-at)
	return l, cps
}

func TestParseWitnessFile(t *testing.T) {
	signer, _ := newKeys(t)
	_, cps := witnessedLog(t, FileOptions{Signer: signer}, 12, 3, 7, 10)
	file := bytes.Join(cps, nil) // what 'pdp log checkpoint >> FILE' makes
	got, err := ParseWitnessFile(file)
	if err != nil || len(got) != 3 {
		t.Fatalf("parse %q: %d checkpoints, %v", file, len(got), err)
	}
	for i, c := range got {
		if !bytes.Equal(c.Signed, cps[i]) || c.Index != i+1 || c.Line != 1+5*i {
			t.Fatalf("checkpoint %d: %+v, want %q at line %d", i, c, cps[i], 1+5*i)
		}
	}
	// Empty lines between checkpoints are allowed.
	if got, err := ParseWitnessFile(bytes.Join(cps, []byte("\n\n"))); err != nil || len(got) != 3 || got[2].Line != 15 {
		t.Fatalf("with empty lines between: %+v %v", got, err)
	}

	one := string(cps[0])
	text, sig, _ := strings.Cut(one, "\n\n")
	bad := []struct {
		name, file, want string
	}{
		{"empty", "", "no checkpoint"},
		{"only empty lines", "\n\n", "no checkpoint"},
		{"cut short", one[:len(one)-1], "no newline"},
		{"no signature", text + "\n", "has no signature"},
		{"no signature after the empty line", text + "\n\n" + text + "\n", "no signature line after its empty line"},
		{"signature first", sig, "line 1: a signature line with no checkpoint text"},
		{"no empty line", text + "\n" + sig, "no empty line before the signatures"},
		{"garbage", "hello\nworld\n", "has no signature"},
		{"not a checkpoint", "hello\n\n" + sig, "line 1: trail: malformed checkpoint"},
		{"garbled signature", text + "\n\n\u2014 northbank-pdp !!!\n", "malformed note"},
		{"second garbled", one + "x\n", "line 6: the checkpoint starting here has no signature"},
		{"control character", strings.Replace(one, "\n", "\r\n", 1), "malformed"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseWitnessFile([]byte(tc.file))
			if err == nil {
				err = firstBad(got)
			}
			if !errors.Is(err, ErrWitnessFile) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrWitnessFile with %q", err, tc.want)
			}
		})
	}
}

// firstBad is the error of the first chunk of cps that is not a
// checkpoint, nil if there is none.
func firstBad(cps []WitnessedCheckpoint) error {
	for _, c := range cps {
		if c.Err != nil {
			return c.Err
		}
	}
	return nil
}

func FuzzParseWitnessFile(f *testing.F) {
	signer, _ := newKeys(f)
	l := openLog(f, f.TempDir(), FileOptions{Signer: signer})
	appendN(f, l, 0, 3)
	cp, err := l.Checkpoint()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp)
	f.Add(append(append([]byte{}, cp...), cp...))
	f.Add([]byte("o\n1\nAAAA\n\n\u2014 k abcd\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cps, err := ParseWitnessFile(data)
		if err != nil {
			if len(cps) != 0 || !errors.Is(err, ErrWitnessFile) {
				t.Fatalf("error %v with %d checkpoints", err, len(cps))
			}
			return
		}
		// The chunks cover the file in order; every good one is a
		// well-formed checkpoint, and the good ones joined again parse to
		// the same.
		var joined []byte
		var good []WitnessedCheckpoint
		prev := 0
		for i, c := range cps {
			if c.Index != i+1 || c.End < prev || c.End > len(data) || !bytes.HasSuffix(data[:c.End], c.Signed) {
				t.Fatalf("chunk %d %+v: out of place (after %d)", i, c, prev)
			}
			prev = c.End
			if c.Err != nil {
				if !errors.Is(c.Err, ErrWitnessFile) {
					t.Fatalf("chunk %d: %v", i, c.Err)
				}
				continue
			}
			if _, err := UnverifiedHead(c.Signed); err != nil {
				t.Fatalf("checkpoint %d %q: %v", i, c.Signed, err)
			}
			good = append(good, c)
			joined = append(joined, c.Signed...)
		}
		if len(good) == 0 {
			return
		}
		again, err := ParseWitnessFile(joined)
		if err != nil || len(again) != len(good) || firstBad(again) != nil {
			t.Fatalf("joined again: %d checkpoints, %v %v; want %d", len(again), err, firstBad(again), len(good))
		}
		for i := range again {
			if !bytes.Equal(again[i].Signed, good[i].Signed) {
				t.Fatalf("checkpoint %d: %q, then %q", i, good[i].Signed, again[i].Signed)
			}
		}
		if WitnessTail(cps) != good[len(good)-1].End {
			t.Fatalf("tail %d, want %d", WitnessTail(cps), good[len(good)-1].End)
		}
	})
}
func TestCheckWitnessed(t *testing.T) {
	signer, vkey := newKeys(t)
	other, _ := newKeys(t)
	l, cps := witnessedLog(t, FileOptions{Signer: signer}, 1000, 1, 10, 999)
	_, foreign := witnessedLog(t, FileOptions{Signer: other}, 10, 10)
	_, otherOrigin := witnessedLog(t, FileOptions{Signer: signer, Origin: "elsewhere/trail"}, 10, 10)
	// The same records, fewer of them: cut.
	short, _ := witnessedLog(t, FileOptions{Signer: signer}, 812, 812)
	// The same number, record 5 another: changed.
	changed := openLog(t, t.TempDir(), FileOptions{Signer: signer})
	appendN(t, changed, 0, 5)
	if _, err := changed.Append(context.Background(), mkRec(5000)); err != nil {
		t.Fatal(err)
	}
	appendN(t, changed, 6, 994)
	_, big := witnessedLog(t, FileOptions{Signer: signer}, 1000, 1000)

	tests := []struct {
		name    string
		log     *FileLog
		cp      []byte
		want    error
		message string
	}{
		{"first", l, cps[0], nil, ""},
		{"middle", l, cps[1], nil, ""},
		{"latest", l, cps[2], nil, ""},
		{"of the same size", changed, cps[0], nil, ""},
		{"another key", l, foreign[0], ErrWitnessSignature, "signature does not check with the verifier key"},
		{"another origin", l, otherOrigin[0], ErrWitnessOrigin, `"elsewhere/trail"`},
		{"cut", short, big[0], ErrWitnessCut, "the trail has 812 records; the witness saw 1,000: records were cut"},
		{"changed", changed, big[0], ErrWitnessChanged, "the first 1,000 records no longer hash to the witnessed root: records before 1,000 were changed"},
		{"changed under a smaller witness", changed, cps[1], ErrWitnessChanged, "the first 10 records"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs, err := tc.log.CheckWitnessed(context.Background(), vkey, [][]byte{tc.cp})
			if err != nil || len(errs) != 1 {
				t.Fatalf("CheckWitnessed: %v %v", errs, err)
			}
			switch got := errs[0]; {
			case tc.want == nil && got != nil:
				t.Fatalf("got %v, want ok", got)
			case tc.want != nil && (!errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.message)):
				t.Fatalf("got %v, want %v with %q", got, tc.want, tc.message)
			}
		})
	}
	if _, err := l.CheckWitnessed(context.Background(), "not a key", cps); err == nil {
		t.Fatal("a bad verifier key is not an error")
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
