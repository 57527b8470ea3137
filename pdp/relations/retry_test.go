package relations

import (
	"context"
	"errors"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// flakyPerms answers CheckPermission with the queued errors first, then
// with HAS_PERMISSION. It stands for the transport to SpiceDB; the code
// under test is the checker's retry.
type flakyPerms struct {
	v1.PermissionsServiceClient
	errs  []error
	calls int
}

func (f *flakyPerms) CheckPermission(context.Context, *v1.CheckPermissionRequest, ...grpc.CallOption) (*v1.CheckPermissionResponse, error) {
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &v1.CheckPermissionResponse{
		Permissionship: v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
		CheckedAt:      &v1.ZedToken{Token: "t1"},
	}, nil
}

func TestCheckRetriesATransientFailureOnce(t *testing.T) {
	ioTimeout := status.Error(codes.Unknown, "failed to lookup namespaces: unable to list namespaces: timeout: read tcp: i/o timeout")
	tests := []struct {
		name      string
		errs      []error
		cancelled bool
		wantCalls int
		wantErr   bool
		itemErr   bool
	}{
		{"no failure", nil, false, 1, false, false},
		{"datastore read timed out once", []error{ioTimeout}, false, 2, false, false},
		{"connection lost once", []error{status.Error(codes.Unavailable, "transport is closing")}, false, 2, false, false},
		{"transient twice fails closed", []error{ioTimeout, ioTimeout}, false, 2, true, false},
		{"a bad question is not asked again", []error{status.Error(codes.InvalidArgument, "no such permission")}, false, 1, true, true},
		{"an ended context is not asked again", []error{ioTimeout}, true, 1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perms := &flakyPerms{errs: tt.errs}
			c := &spiceChecker{perms: perms}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancelled {
				cancel()
			}
			defer cancel()
			res, err := c.CheckBulkAt(ctx, []Check{{Resource: account("a1"), Permission: "view", Subject: user("bob")}}, Consistency{})
			if perms.calls != tt.wantCalls {
				t.Errorf("asked %d times, want %d", perms.calls, tt.wantCalls)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (len(res.Items) != 1 || !res.Items[0].Has) {
				t.Errorf("answer %+v, want HAS", res)
			}
			if tt.wantErr && errors.Is(err, ErrCheckItem) != tt.itemErr {
				t.Errorf("err %v: ErrCheckItem %v, want %v (only errors of the question are item errors)", err, !tt.itemErr, tt.itemErr)
			}
		})
	}
}
