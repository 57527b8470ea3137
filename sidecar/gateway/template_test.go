package gateway

import (
	"errors"
	"maps"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		in      string
		vars    []string
		wantErr string // substring; "" means valid
	}{
		{in: "/", vars: nil},
		{in: "/accounts", vars: nil},
		{in: "/accounts/", vars: nil},
		{in: "/accounts/{id}", vars: []string{"id"}},
		{in: "/accounts/{id}/payments", vars: []string{"id"}},
		{in: "/customers/{cid}/accounts/{aid}", vars: []string{"cid", "aid"}},
		{in: "/files/{path...}", vars: []string{"path"}},
		{in: "/a b/{_x1}", vars: []string{"_x1"}},
		{in: "", wantErr: "must start with '/'"},
		{in: "accounts/{id}", wantErr: "must start with '/'"},
		{in: "/accounts//{id}", wantErr: "empty segment"},
		{in: "/accounts/{id}.json", wantErr: "whole segment"},
		{in: "/accounts/x{id}", wantErr: "whole segment"},
		{in: "/accounts/{}", wantErr: "variable name"},
		{in: "/accounts/{1id}", wantErr: "variable name"},
		{in: "/accounts/{id-x}", wantErr: "variable name"},
		{in: "/accounts/{id}/{id}", wantErr: "appears twice"},
		{in: "/files/{p...}/x", wantErr: "last segment"},
		{in: "/a/../b", wantErr: "dot segment"},
		{in: "/a/./b", wantErr: "dot segment"},
		{in: "/a%20b", wantErr: "unescaped"},
		{in: "/a\x00b", wantErr: "control character"},
		{in: "/a\xffb", wantErr: "not UTF-8"},
		{in: "/" + strings.Repeat("a/", 70), wantErr: "segments"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tmpl, err := ParseTemplate(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrTemplate) {
					t.Fatalf("err = %v, want ErrTemplate containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTemplate: %v", err)
			}
			if got := tmpl.Vars(); !reflect.DeepEqual(got, tt.vars) {
				t.Errorf("Vars = %q, want %q", got, tt.vars)
			}
			if tmpl.String() != tt.in {
				t.Errorf("String = %q", tmpl.String())
			}
		})
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "/", want: nil},
		{in: "/a", want: []string{"a"}},
		{in: "/a/b", want: []string{"a", "b"}},
		{in: "/a/", want: []string{"a", ""}},
		{in: "/a%20b/c%C3%A9", want: []string{"a b", "cé"}},
		{in: "/acc-1/%7Bx%7D", want: []string{"acc-1", "{x}"}},
		{in: "", wantErr: true},
		{in: "a/b", wantErr: true},
		{in: "//a", wantErr: true},
		{in: "/a//b", wantErr: true},
		{in: "/a/../b", wantErr: true},
		{in: "/a/./b", wantErr: true},
		{in: "/a/%2e%2e/b", wantErr: true},
		{in: "/a/%2E/b", wantErr: true},
		{in: "/a%2Fb", wantErr: true},
		{in: "/a%5Cb", wantErr: true},
		{in: `/a\b`, wantErr: true},
		{in: "/a%00b", wantErr: true},
		{in: "/a%0Ab", wantErr: true},
		{in: "/a%ffb", wantErr: true},
		{in: "/a%zz", wantErr: true},
		{in: "/" + strings.Repeat("a/", 300), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SplitPath(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrPath) {
					t.Fatalf("err = %v, want ErrPath", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitPath: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateMatch(t *testing.T) {
	tests := []struct {
		tmpl, path string
		want       map[string]string // nil: no match
	}{
		{"/", "/", map[string]string{}},
		{"/", "/a", nil},
		{"/accounts", "/accounts", map[string]string{}},
		{"/accounts", "/accounts/", nil},
		{"/accounts/", "/accounts/", map[string]string{}},
		{"/accounts/", "/accounts", nil},
		{"/accounts/{id}", "/accounts/a1", map[string]string{"id": "a1"}},
		{"/accounts/{id}", "/accounts/", nil},
		{"/accounts/{id}", "/accounts/a1/", nil},
		{"/accounts/{id}", "/accounts/a1/payments", nil},
		{"/accounts/{id}", "/Accounts/a1", nil},
		{"/accounts/{id}", "/accounts/a%20b", map[string]string{"id": "a b"}},
		{"/accounts/{id}/payments", "/accounts/a1/payments", map[string]string{"id": "a1"}},
		{"/accounts/{id}/payments", "/accounts/a1/statements", nil},
		{"/c/{cid}/a/{aid}", "/c/x/a/y", map[string]string{"cid": "x", "aid": "y"}},
		{"/files/{p...}", "/files/a/b/c", map[string]string{"p": "a/b/c"}},
		{"/files/{p...}", "/files/", map[string]string{"p": ""}},
		{"/files/{p...}", "/files", nil},
		{"/a b", "/a%20b", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl+" "+tt.path, func(t *testing.T) {
			tmpl, err := ParseTemplate(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			segs, err := SplitPath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := tmpl.Match(segs)
			if tt.want == nil {
				if ok {
					t.Fatalf("matched with %v, want no match", got)
				}
				return
			}
			if !ok {
				t.Fatal("no match")
			}
			if got == nil {
				got = map[string]string{}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("vars %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoutesFirstMatchWins(t *testing.T) {
	rs, err := NewRoutes([]RouteConfig{
		{Name: "pay", Methods: []string{"post"}, Path: "/accounts/{id}/payments", Action: "make_payment", Resource: ResourceConfig{Type: "account", ID: "{id}"}},
		{Name: "special", Methods: []string{"GET"}, Path: "/accounts/special", Action: "view_special", Resource: ResourceConfig{Type: "bank", ID: "bank"}},
		{Name: "view", Methods: []string{"GET", "HEAD"}, Path: "/accounts/{id}", Action: "view_statements", Resource: ResourceConfig{Type: "account", ID: "{id}"}},
		{Name: "shadowed", Methods: []string{"GET"}, Path: "/accounts/special", Action: "never", Resource: ResourceConfig{Type: "bank", ID: "bank"}},
		{Name: "any", Methods: []string{"*"}, Path: "/files/{p...}", Action: "files", Resource: ResourceConfig{Type: "file", ID: "{p}"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path, route string
		vars                map[string]string
	}{
		{"POST", "/accounts/a1/payments", "pay", map[string]string{"id": "a1"}},
		{"post", "/accounts/a1/payments", "pay", map[string]string{"id": "a1"}},
		{"GET", "/accounts/a1/payments", "", nil},
		{"GET", "/accounts/special", "special", nil},
		{"HEAD", "/accounts/a1", "view", map[string]string{"id": "a1"}},
		{"DELETE", "/accounts/a1", "", nil},
		{"PROPFIND", "/files/x/y", "any", map[string]string{"p": "x/y"}},
		{"GET", "/nothing", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r, vars, err := rs.Match(tt.method, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			name := ""
			if r != nil {
				name = r.Name
			}
			if name != tt.route {
				t.Fatalf("route %q, want %q", name, tt.route)
			}
			if len(vars) != 0 || len(tt.vars) != 0 {
				if !maps.Equal(vars, tt.vars) {
					t.Errorf("vars %v, want %v", vars, tt.vars)
				}
			}
		})
	}
	if _, _, err := rs.Match("GET", "/accounts/../files/x"); !errors.Is(err, ErrPath) {
		t.Errorf("dot segments: err = %v, want ErrPath", err)
	}
}

// FuzzParseTemplate: the parser never panics, and a template it accepts
// prints back unchanged and re-parses to the same variables.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"/", "/accounts/{id}", "/a/{b}/c/{d...}", "/{x}/{x}", "/a//b", "/{a...}/b", "/%41", "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("error %v does not wrap ErrTemplate", err)
			}
			return
		}
		again, err := ParseTemplate(tmpl.String())
		if err != nil || !reflect.DeepEqual(again.Vars(), tmpl.Vars()) {
			t.Fatalf("re-parse of %q: %v, vars %q vs %q", s, err, again.Vars(), tmpl.Vars())
		}
	})
}

// FuzzMatch: SplitPath and Match never panic; a match binds exactly the
// template's variables, and putting their values back into the template
// gives the matched path's segments.
func FuzzMatch(f *testing.F) {
	f.Add("/accounts/{id}/payments", "/accounts/a1/payments")
	f.Add("/files/{p...}", "/files/a/b/")
	f.Add("/a/", "/a/")
	f.Add("/{x}", "/%2e%2e")
	f.Add("/{x}", "/a%2Fb")
	f.Fuzz(func(t *testing.T, tmplStr, path string) {
		tmpl, err := ParseTemplate(tmplStr)
		if err != nil {
			return
		}
		segs, err := SplitPath(path)
		if err != nil {
			if !errors.Is(err, ErrPath) {
				t.Fatalf("error %v does not wrap ErrPath", err)
			}
			return
		}
		for _, s := range segs {
			if s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
				t.Fatalf("SplitPath(%q) let segment %q through", path, s)
			}
		}
		vars, ok := tmpl.Match(segs)
		if !ok {
			return
		}
		if len(vars) != len(tmpl.Vars()) {
			t.Fatalf("vars %v for template variables %q", vars, tmpl.Vars())
		}
		var rebuilt []string
		for _, ts := range tmpl.segs {
			switch {
			case ts.name == "":
				rebuilt = append(rebuilt, ts.lit)
			case ts.rest:
				rebuilt = append(rebuilt, strings.Split(vars[ts.name], "/")...)
			default:
				if vars[ts.name] == "" {
					t.Fatalf("variable %s matched an empty segment", ts.name)
				}
				rebuilt = append(rebuilt, vars[ts.name])
			}
		}
		if !reflect.DeepEqual(rebuilt, segs) && !(len(rebuilt) == 0 && len(segs) == 0) {
			t.Fatalf("template %q with %v gives %q, path segments %q", tmplStr, vars, rebuilt, segs)
		}
		// The escaped form of the rebuilt path splits to the same segments.
		esc := ""
		for _, s := range rebuilt {
			esc += "/" + url.PathEscape(s)
		}
		if esc == "" {
			esc = "/"
		}
		if again, err := SplitPath(esc); err != nil || !reflect.DeepEqual(again, segs) && len(segs) > 0 {
			t.Fatalf("re-escaped %q: %q, %v; want %q", esc, again, err, segs)
		}
	})
}
