package gateway

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ciampdp/pdp/pdp"
)

// Route is a compiled route table entry.
type Route struct {
	// Name is the configured name, or "METHODS path".
	Name     string
	methods  []string // upper case; nil means any
	tmpl     *Template
	action   string
	resType  string
	resID    valueSpec
	resProps map[string]valueSpec
	context  map[string]valueSpec
}

// Routes is an ordered route table: the first matching route wins.
type Routes struct {
	routes []*Route
}

// NewRoutes compiles and validates a route table.
func NewRoutes(cfgs []RouteConfig) (*Routes, error) {
	return compileRoutes(cfgs)
}

func compileRoutes(cfgs []RouteConfig) (*Routes, error) {
	rs := &Routes{routes: make([]*Route, 0, len(cfgs))}
	names := map[string]int{}
	for i, rc := range cfgs {
		r, err := compileRoute(rc)
		label := routeLabel(i, rc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %w", label, ErrRoute, err)
		}
		if j, dup := names[r.Name]; dup && rc.Name != "" {
			return nil, fmt.Errorf("%s: %w: name %q is already used by route %d", label, ErrRoute, r.Name, j+1)
		}
		names[r.Name] = i
		rs.routes = append(rs.routes, r)
	}
	return rs, nil
}

// routeLabel names route i (0-based) in errors: its number, and its name
// or its methods and path.
func routeLabel(i int, rc RouteConfig) string {
	if rc.Name != "" {
		return fmt.Sprintf("route %d %q", i+1, rc.Name)
	}
	return fmt.Sprintf("route %d (%s %s)", i+1, strings.Join(rc.Methods, ","), rc.Path)
}

func compileRoute(rc RouteConfig) (*Route, error) {
	r := &Route{Name: rc.Name, action: rc.Action, resType: rc.Resource.Type}
	if len(rc.Methods) == 0 {
		return nil, fmt.Errorf(`methods are required (list them, or ["*"] for any)`)
	}
	for _, m := range rc.Methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "*" {
			if len(rc.Methods) > 1 {
				return nil, fmt.Errorf(`"*" must be the only method`)
			}
			r.methods = nil
			break
		}
		if !isToken(m) {
			return nil, fmt.Errorf("method %q is not an HTTP method token", m)
		}
		if !slices.Contains(r.methods, m) {
			r.methods = append(r.methods, m)
		}
	}
	t, err := ParseTemplate(rc.Path)
	if err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	r.tmpl = t
	if r.Name == "" {
		ms := "*"
		if r.methods != nil {
			ms = strings.Join(r.methods, ",")
		}
		r.Name = ms + " " + rc.Path
	}
	if rc.Action == "" {
		return nil, fmt.Errorf("action is required")
	}
	if rc.Resource.Type == "" {
		return nil, fmt.Errorf("resource.type is required")
	}
	if rc.Resource.ID == "" {
		return nil, fmt.Errorf(`resource.id is required: a path variable like "{id}" or a fixed id`)
	}
	if r.resID, err = r.spec("resource.id", rc.Resource.ID); err != nil {
		return nil, err
	}
	if r.resProps, err = r.specs("resource.properties", rc.Resource.Properties); err != nil {
		return nil, err
	}
	for k := range rc.Context {
		if why, ok := reservedContext[k]; ok {
			return nil, fmt.Errorf("context.%s cannot be set by a route: %s", k, why)
		}
	}
	if r.context, err = r.specs("context", rc.Context); err != nil {
		return nil, err
	}
	return r, nil
}

// spec parses one value spec and checks that a path variable it names
// exists in the route's template.
func (r *Route) spec(field, s string) (valueSpec, error) {
	v, err := parseValue(s)
	if err != nil {
		return v, fmt.Errorf("%s: %w", field, err)
	}
	if v.src == srcPath && !r.tmpl.HasVar(v.name) {
		return v, fmt.Errorf("%s: path %q has no variable {%s}", field, r.tmpl, v.name)
	}
	return v, nil
}

func (r *Route) specs(field string, m map[string]string) (map[string]valueSpec, error) {
	if len(m) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same error every time
	out := make(map[string]valueSpec, len(m))
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("%s: empty key", field)
		}
		v, err := r.spec(field+"."+k, m[k])
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// isToken reports whether s is an HTTP token (RFC 9110), as methods are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// matchesMethod reports whether the route takes method (upper case).
func (r *Route) matchesMethod(method string) bool {
	return r.methods == nil || slices.Contains(r.methods, method)
}

// Match returns the first route matching method and the escaped path (no
// query), with the path variables' values; a nil Route when none matches.
// A path that is not canonical is an error wrapping ErrPath.
func (rs *Routes) Match(method, escapedPath string) (*Route, map[string]string, error) {
	segs, err := SplitPath(escapedPath)
	if err != nil {
		return nil, nil, err
	}
	method = strings.ToUpper(method)
	for _, r := range rs.routes {
		if !r.matchesMethod(method) {
			continue
		}
		if vars, ok := r.tmpl.Match(segs); ok {
			return r, vars, nil
		}
	}
	return nil, nil, nil
}

// request builds the evaluation of a matched request for subject. A value
// that does not convert to its declared type, or an empty resource id, is
// an error wrapping errValue.
func (r *Route) request(subject pdp.Entity, in *valueInput) (pdp.Request, error) {
	req := pdp.Request{
		Subject:  subject,
		Action:   pdp.Action{Name: r.action},
		Resource: pdp.Entity{Type: r.resType},
	}
	id, ok, err := r.resID.resolve(in)
	if err != nil {
		return req, fmt.Errorf("resource.id: %w", err)
	}
	s, _ := id.(string)
	if !ok || s == "" {
		return req, fmt.Errorf("%w: resource id (%s) is missing", errValue, r.resID.what())
	}
	req.Resource.ID = s
	if req.Resource.Properties, err = resolveAll(r.resProps, in); err != nil {
		return req, fmt.Errorf("resource.properties: %w", err)
	}
	if req.Context, err = resolveAll(r.context, in); err != nil {
		return req, fmt.Errorf("context: %w", err)
	}
	return req, nil
}

// resolveAll resolves a map of specs; absent values are left out.
func resolveAll(specs map[string]valueSpec, in *valueInput) (map[string]any, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(specs))
	for k, v := range specs {
		val, ok, err := v.resolve(in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if ok {
			out[k] = val
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
