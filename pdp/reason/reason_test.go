package reason

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeEntries reads the rows of the README's "Reason codes" tables: a
// two-column row (Code | Meaning) is a decision code, a three-column row
// (Code | Where | Meaning) says where. Rows whose first cell is not one
// code (the policy's @reason) are skipped.
func readmeEntries(t *testing.T) []Entry {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Reason codes\n")
	if !ok {
		t.Fatal(`README.md has no "## Reason codes" section`)
	}
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	code := regexp.MustCompile("^`([a-z_]+)`$")
	var out []Entry
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := splitRow(line)
		m := code.FindStringSubmatch(cells[0])
		if m == nil {
			continue
		}
		switch len(cells) {
		case 2:
			out = append(out, Entry{Code: m[1], Where: Decision, Meaning: cells[1]})
		case 3:
			out = append(out, Entry{Code: m[1], Where: Where(cells[1]), Meaning: cells[2]})
		default:
			t.Errorf("README.md reason row with %d cells: %s", len(cells), line)
		}
	}
	return out
}

// splitRow splits a Markdown table row on its unescaped pipes and
// unescapes \| in the cells.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "|"), "|")
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cell.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

type key struct {
	code  string
	where Where
}

// TestREADMEListsTheCatalogue keeps the README's reason tables and the
// catalogue equal, both ways, meaning text included.
func TestREADMEListsTheCatalogue(t *testing.T) {
	t.Parallel()
	readme := map[key]string{}
	for _, e := range readmeEntries(t) {
		readme[key{e.Code, e.Where}] = e.Meaning
	}
	cat := map[key]string{}
	for _, e := range Catalogue() {
		k := key{e.Code, e.Where}
		cat[k] = e.Meaning
		got, ok := readme[k]
		switch {
		case !ok:
			t.Errorf("README.md does not list %s (%s); add the row:\n%s", e.Code, e.Where, row(e))
		case got != e.Meaning:
			t.Errorf("README.md's meaning of %s (%s) differs from the catalogue's:\n README:    %s\n catalogue: %s", e.Code, e.Where, got, e.Meaning)
		}
	}
	for k := range readme {
		if _, ok := cat[k]; !ok {
			t.Errorf("README.md lists %s (%s), which the catalogue (pdp/reason) does not have", k.code, k.where)
		}
	}
}

// row is the README row of an entry.
func row(e Entry) string {
	meaning := strings.ReplaceAll(e.Meaning, "|", `\|`)
	if e.Where == Decision {
		return "| `" + e.Code + "` | " + meaning + " |"
	}
	return "| `" + e.Code + "` | " + string(e.Where) + " | " + meaning + " |"
}

// TestCatalogueWellFormed: codes are snake case, listed once per place,
// with a known place and a one-line meaning.
func TestCatalogueWellFormed(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[key]bool{}
	for _, e := range Catalogue() {
		k := key{e.Code, e.Where}
		if seen[k] {
			t.Errorf("%s (%s) is listed twice", e.Code, e.Where)
		}
		seen[k] = true
		if !snake.MatchString(e.Code) {
			t.Errorf("%q is not a snake_case code", e.Code)
		}
		switch e.Where {
		case Decision, HTTPError, Sidecar, Gateway:
		default:
			t.Errorf("%s: unknown place %q", e.Code, e.Where)
		}
		if e.Meaning == "" || strings.ContainsAny(e.Meaning, "\n") {
			t.Errorf("%s (%s): the meaning must be one non-empty line", e.Code, e.Where)
		}
		if !Known(e.Code, e.Where) {
			t.Errorf("Known(%q, %q) = false", e.Code, e.Where)
		}
	}
	if Known(NotPermitted, Gateway) || Known("no_such_code", Decision) {
		t.Error("Known answers true for a code not catalogued there")
	}
}
