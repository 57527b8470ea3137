package reason

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sharedWords are codes that are also ordinary words of other
// vocabularies (error strings, delegation statuses, OAuth's invalid_token
// challenge), so a literal spelling them is not necessarily a reason code.
var sharedWords = map[string]bool{
	Forbidden:       true, // errors.New("forbidden"), the client's error field
	Invalid:         true,
	NotFound:        true,
	NoDelegation:    true, // a delegation status (context.delegation.status)
	CurrencyMissing: true, // a delegation status as well
	InvalidToken:    true, // RFC 6750's error="invalid_token"
}

// TestNoCodeLiterals keeps the catalogue the one place a reason code is
// spelled: no other non-test Go file of the module writes one as a string
// literal; they use this package's constants.
func TestNoCodeLiterals(t *testing.T) {
	t.Parallel()
	codes := map[string]bool{}
	for _, e := range Catalogue() {
		if !sharedWords[e.Code] {
			codes[e.Code] = true
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := filepath.Abs(".")
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == self || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && codes[s] {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d: the reason code %q is spelled out; use pdp/reason's constant", rel, fset.Position(lit.Pos()).Line, s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
