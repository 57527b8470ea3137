package relations

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/authzed/spicedb/pkg/tuple"
)

// ParseRelationship reads one relationship in SpiceDB's text form:
// `resource_type:id#relation@subject_type:id[#subject_relation]`, optionally
// followed by a caveat with its write-time context,
// `[caveat_name:{"param":"value"}]`, or an expiration, `[expiration:2030-12-31T00:00:00Z]`.
func ParseRelationship(s string) (Relationship, error) {
	r, err := tuple.ParseV1Rel(strings.TrimSpace(s))
	if err != nil {
		return Relationship{}, fmt.Errorf("relations: parse %q: %w", s, err)
	}
	out := Relationship{
		Resource:        Object{Type: r.GetResource().GetObjectType(), ID: r.GetResource().GetObjectId()},
		Relation:        r.GetRelation(),
		Subject:         Object{Type: r.GetSubject().GetObject().GetObjectType(), ID: r.GetSubject().GetObject().GetObjectId()},
		SubjectRelation: r.GetSubject().GetOptionalRelation(),
	}
	if c := r.GetOptionalCaveat(); c != nil {
		out.Caveat = c.GetCaveatName()
		if ctx := c.GetContext(); ctx != nil {
			out.CaveatContext = ctx.AsMap()
		}
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		t := e.AsTime()
		out.Expires = &t
	}
	return out, nil
}

// ReadRelationshipsText reads relationships one per line (see
// ParseRelationship); blank lines and lines starting with # or // are
// skipped. Errors name the line.
func ReadRelationshipsText(r io.Reader) ([]Relationship, error) {
	var out []Relationship
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "//") {
			continue
		}
		rel, err := ParseRelationship(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, rel)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("relations: read: %w", err)
	}
	return out, nil
}
