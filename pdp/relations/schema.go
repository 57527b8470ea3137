package relations

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ciampdp/pdp/pdp/zedschema"
)

// ErrNoSchema is returned by ReadSchema when no schema was ever written.
var ErrNoSchema = errors.New("relations: no schema has been written")

// WriteSchema replaces SpiceDB's schema with zed (the schema language) and
// returns the token of the write, which becomes the floor.
func (s *Store) WriteSchema(ctx context.Context, zed string) (string, error) {
	if s.closed.Load() {
		return "", ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	resp, err := s.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: zed})
	if err != nil {
		return "", fmt.Errorf("relations: write schema: %w", err)
	}
	token := resp.GetWrittenAt().GetToken()
	s.setFloor(token)
	return token, nil
}

// ReadSchema returns the current schema text (as SpiceDB prints it, not
// byte for byte what was written), or ErrNoSchema.
func (s *Store) ReadSchema(ctx context.Context) (string, error) {
	if s.closed.Load() {
		return "", ErrClosed
	}
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	resp, err := s.schema.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if status.Code(err) == codes.NotFound {
		return "", ErrNoSchema
	}
	if err != nil {
		return "", fmt.Errorf("relations: read schema: %w", err)
	}
	return resp.GetSchemaText(), nil
}

// NameKind tells a relation (stored facts) from a permission (computed);
// see package zedschema, which reads schemas without this package's server.
type NameKind = zedschema.NameKind

const (
	KindRelation   = zedschema.KindRelation
	KindPermission = zedschema.KindPermission
)

// ParseSchemaPermissions is zedschema.ParseSchemaPermissions.
func ParseSchemaPermissions(zed string) (map[string]map[string]NameKind, error) {
	return zedschema.ParseSchemaPermissions(zed)
}

// RelationCaveats is zedschema.RelationCaveats.
func RelationCaveats(zed string) (map[string]map[string]map[string]bool, error) {
	return zedschema.RelationCaveats(zed)
}

// CaveatedNames is zedschema.CaveatedNames.
func CaveatedNames(zed string) (map[string]map[string]bool, error) {
	return zedschema.CaveatedNames(zed)
}
