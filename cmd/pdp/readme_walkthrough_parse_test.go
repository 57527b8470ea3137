//go:build unix

package main

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// TestReadmeShellCommands pins how the walkthrough reads a README block:
// where a command ends, which comment lines are its output and which are
// prose.
func TestReadmeShellCommands(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("SKIPPED: needs bash")
	}
	type cmd struct {
		line   int
		text   string
		expect []string
	}
	for _, tc := range []struct {
		name  string
		block string
		want  []cmd
	}{
		{
			name:  "output right after a command, prose before one",
			block: "# prose\nev x '{}'\n# {\"decision\":true}\n\n# more prose\nev y",
			want:  []cmd{{1, "ev x '{}'", []string{`{"decision":true}`}}, {5, "ev y", nil}},
		},
		{
			name:  "a blank line ends an output",
			block: "a\n# out\n\n# prose, not output\nb\n# out b\n#   indented\n#",
			want:  []cmd{{0, "a", []string{"out"}}, {4, "b", []string{"out b", "  indented", ""}}},
		},
		{
			name:  "a comment at the end of a command's line is prose",
			block: "mk carol   # allowed: dave\n# {\"decision\":true}",
			want:  []cmd{{0, "mk carol   # allowed: dave", []string{`{"decision":true}`}}},
		},
		{
			name:  "continuations: an open quote, a trailing pipe, a backslash",
			block: "ev a '{\"x\":1,\n  \"y\":2}'\ncurl -s u |\n  jq .\ncurl -s u \\\n  -d x\n# out",
			want: []cmd{
				{0, "ev a '{\"x\":1,\n  \"y\":2}'", nil},
				{2, "curl -s u |\n  jq .", nil},
				{4, "curl -s u \\\n  -d x", []string{"out"}},
			},
		},
		{
			name:  "a here-document, with a # line inside",
			block: "cat > f <<'JSON'\n# not a comment\n{}\nJSON\ngo run ./cmd/pdp delegation accept <id> --actor user:trent\n# out",
			want: []cmd{
				{0, "cat > f <<'JSON'\n# not a comment\n{}\nJSON", nil},
				{4, "go run ./cmd/pdp delegation accept <id> --actor user:trent", []string{"out"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitShellCommands(mdBlock{lines: strings.Split(tc.block, "\n")})
			if err != nil {
				t.Fatal(err)
			}
			var g []cmd
			for _, c := range got {
				g = append(g, cmd{c.line, c.text, c.expect})
			}
			if !reflect.DeepEqual(g, tc.want) {
				t.Errorf("got  %+v\nwant %+v", g, tc.want)
			}
		})
	}
	if _, err := splitShellCommands(mdBlock{line: 7, lines: []string{"ev a '{", "# still in the quote"}}); err == nil {
		t.Error("an unterminated command was accepted")
	}
}

// TestReadmeOutputMatch pins what … tolerates, and nothing else.
func TestReadmeOutputMatch(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"OK: 27 records checked", "OK: 27 records checked", true},
		{"OK: 27 records checked", "OK: 28 records checked", false},
		{"OK: 27 records checked", "OK: 27 records checked\nmore", false},
		{"Decision … (trail record 16): DENIED.", "Decision 01a2-x (trail record 16): DENIED.", true},
		{"Decision … (trail record 16): DENIED.", "Decision 01a2-x (trail record 15): DENIED.", false},
		{`{"decision":true,"reasons":[],…}`, `{"decision":true,"reasons":[],"delegations":null}`, true},
		{"a…\nb", "a1\nx\nb", false}, // … within a line stays within it
		{"first\n…", "first\nsecond\nthird", true},
		{"first\n…\nlast", "first\nlast", true},
		{"first\n…\nlast", "first\nx\ny\nlast", true},
		{"first\n…\nlast", "first\nx\ny", false},
		{"", "", true},
		{"x", "", false},
	} {
		want := strings.Split(tc.want, "\n")
		if tc.want == "" {
			want = []string{}
		}
		if got := matchOutput(want, outputLines(tc.got)); got != tc.ok {
			t.Errorf("matchOutput(%q, %q) = %v, want %v", tc.want, tc.got, got, tc.ok)
		}
	}
}

// TestReadmePlaceholders pins how <id> and <decision-id> are filled.
func TestReadmePlaceholders(t *testing.T) {
	outputs := []string{
		"2026-12-07T12:26:50Z  01a25078-9927-7559-bd6a-0320e7e03995  allow  user:bob\n",
		"{\n  \"delegation\": {\n    \"id\": \"dlg-1\",\n    \"principal\": {\"type\": \"user\", \"id\": \"alice\"}}}\n",
		"no ids here\n",
	}
	got, err := fillPlaceholders("pdp delegation accept <id> && pdp explain <decision-id>", outputs)
	if err != nil {
		t.Fatal(err)
	}
	if want := "pdp delegation accept dlg-1 && pdp explain 01a25078-9927-7559-bd6a-0320e7e03995"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := fillPlaceholders("explain <decision-id>", outputs[1:]); err == nil {
		t.Error("a placeholder without a value was filled")
	}
}
