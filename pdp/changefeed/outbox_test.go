package changefeed

import (
	"context"
	"errors"
	"testing"
)

// recorder is a Publisher, and with prepare set an Outbox, that notes what
// it is asked.
type recorder struct {
	calls   []string
	prepare error
}

func (r *recorder) Publish(_ context.Context, reason string) (uint64, error) {
	r.calls = append(r.calls, "publish "+reason)
	return 1, nil
}

type outboxRecorder struct{ *recorder }

func (o outboxRecorder) Prepare(_ context.Context, reason string) (Pending, error) {
	o.calls = append(o.calls, "prepare "+reason)
	if o.prepare != nil {
		return nil, o.prepare
	}
	return pendingRecorder{o.recorder, reason}, nil
}

type pendingRecorder struct {
	r      *recorder
	reason string
}

func (p pendingRecorder) Publish(context.Context) (uint64, error) {
	p.r.calls = append(p.r.calls, "pending publish "+p.reason)
	return 2, nil
}
func (p pendingRecorder) Drop(context.Context) { p.r.calls = append(p.r.calls, "drop "+p.reason) }

func TestBegin(t *testing.T) {
	down := errors.New("database down")
	for _, tc := range []struct {
		name    string
		outbox  bool
		prepare error
		made    bool
		want    []string
		wantErr bool
	}{
		{name: "plain, made", made: true, want: []string{"publish x"}},
		{name: "plain, not made", want: nil},
		{name: "outbox, made", outbox: true, made: true, want: []string{"prepare x", "pending publish x"}},
		{name: "outbox, not made", outbox: true, want: []string{"prepare x", "drop x"}},
		{name: "outbox down, made", outbox: true, prepare: down, made: true, want: []string{"prepare x", "publish x"}, wantErr: true},
		{name: "outbox down, not made", outbox: true, prepare: down, want: []string{"prepare x"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{prepare: tc.prepare}
			var p Publisher = r
			if tc.outbox {
				p = outboxRecorder{r}
			}
			finish, err := Begin(t.Context(), p, "x")
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, down)) {
				t.Errorf("Begin: %v, want error %v", err, tc.wantErr)
			}
			if _, err := finish(t.Context(), tc.made); err != nil {
				t.Fatal(err)
			}
			if len(r.calls) != len(tc.want) {
				t.Fatalf("calls %q, want %q", r.calls, tc.want)
			}
			for i := range tc.want {
				if r.calls[i] != tc.want[i] {
					t.Errorf("calls %q, want %q", r.calls, tc.want)
				}
			}
		})
	}
	finish, err := Begin(t.Context(), nil, "x")
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := finish(t.Context(), true); seq != 0 || err != nil {
		t.Errorf("without a publisher: %d %v", seq, err)
	}
}
