package relations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// Lookups enumerate the graph: the resources a subject holds a permission
// on, the subjects that hold one on a resource. They read at least as fresh
// as the floor, like checks, but always ask SpiceDB (the fact cache holds
// check answers only). An answer lists only definite holders: one that
// holds the permission only under a caveat whose context is missing is left
// out, and so is a wildcard subject ("user:*"), which names no one.

// wildcard is the subject id of a wildcard relationship (user:*).
const wildcard = "*"

// LookupResources lists the ids of the objects of resourceType on which
// subject has permission, sorted and without duplicates, and the revision
// they were read at. caveatContext feeds caveats, as for a Check. limit > 0
// stops reading once that many ids are in; 0 reads them all.
func (s *Store) LookupResources(ctx context.Context, resourceType, permission string, subject Object, caveatContext map[string]any, limit int) ([]string, string, error) {
	req := &v1.LookupResourcesRequest{
		ResourceObjectType: resourceType,
		Permission:         permission,
		Subject:            &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: subject.Type, ObjectId: subject.ID}},
	}
	ids, rev, err := s.lookup(ctx, caveatContext, limit, func(ctx context.Context, at *v1.Consistency, caveats *structpb.Struct) (func() (string, string, bool, error), error) {
		req.Consistency, req.Context = at, caveats
		stream, err := s.perms.LookupResources(ctx, req)
		if err != nil {
			return nil, err
		}
		return func() (string, string, bool, error) {
			resp, err := stream.Recv()
			if err != nil {
				return "", "", false, err
			}
			has := resp.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION
			return resp.GetResourceObjectId(), resp.GetLookedUpAt().GetToken(), has, nil
		}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("relations: lookup resources %s#%s@%s: %w", resourceType, permission, subject, err)
	}
	return ids, rev, nil
}

// LookupSubjects lists the ids of the subjects of subjectType that have
// permission on resource, sorted and without duplicates, and the revision
// they were read at. Wildcard subjects are left out. caveatContext and
// limit are as for LookupResources.
func (s *Store) LookupSubjects(ctx context.Context, resource Object, permission, subjectType string, caveatContext map[string]any, limit int) ([]string, string, error) {
	req := &v1.LookupSubjectsRequest{
		Resource:          &v1.ObjectReference{ObjectType: resource.Type, ObjectId: resource.ID},
		Permission:        permission,
		SubjectObjectType: subjectType,
		WildcardOption:    v1.LookupSubjectsRequest_WILDCARD_OPTION_EXCLUDE_WILDCARDS,
	}
	ids, rev, err := s.lookup(ctx, caveatContext, limit, func(ctx context.Context, at *v1.Consistency, caveats *structpb.Struct) (func() (string, string, bool, error), error) {
		req.Consistency, req.Context = at, caveats
		stream, err := s.perms.LookupSubjects(ctx, req)
		if err != nil {
			return nil, err
		}
		return func() (string, string, bool, error) {
			resp, err := stream.Recv()
			if err != nil {
				return "", "", false, err
			}
			sub := resp.GetSubject()
			id := sub.GetSubjectObjectId()
			// SpiceDB may ignore WildcardOption; a wildcard is never a result.
			has := id != wildcard && sub.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION
			return id, resp.GetLookedUpAt().GetToken(), has, nil
		}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("relations: lookup subjects %s#%s@%s: %w", resource, permission, subjectType, err)
	}
	return ids, rev, nil
}

// lookupStream opens one lookup stream at a consistency, with caveat
// context, and returns a function that reads the next answer: the id, the
// revision it was read at, whether it is a definite result, or io.EOF at
// the end.
type lookupStream func(ctx context.Context, at *v1.Consistency, caveats *structpb.Struct) (recv func() (id, revision string, has bool, err error), err error)

// lookup runs a lookup stream at the floor, under the call timeout, and
// collects its definite ids (at most limit when limit > 0).
func (s *Store) lookup(ctx context.Context, caveatContext map[string]any, limit int, open lookupStream) ([]string, string, error) {
	if s.closed.Load() {
		return nil, "", ErrClosed
	}
	var caveats *structpb.Struct
	if len(caveatContext) > 0 {
		st, err := toStruct(caveatContext)
		if err != nil {
			return nil, "", err
		}
		caveats = st
	}
	s.catchUp(ctx)
	floor := s.Floor()
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	// Cancelling stops the stream when the limit is reached early.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	recv, err := open(ctx, consistencyToProto(Consistency{AtLeast: floor}), caveats)
	if err != nil {
		return nil, "", err
	}
	seen := map[string]struct{}{}
	revision := ""
	for limit <= 0 || len(seen) < limit {
		id, rev, has, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		if rev != "" {
			revision = rev
		}
		if has {
			seen[id] = struct{}{}
		}
	}
	if revision == "" {
		// No answer came, so none named its revision: the read was at
		// least as fresh as the floor, the best revision known.
		revision = floor
	}
	return slices.Sorted(maps.Keys(seen)), revision, nil
}
