package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
	git "github.com/go-git/go-git/v5"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/purposes"
	"github.com/ciampdp/pdp/pdp/signals"
)

// PurposesFile is the purposes registry of a bundle, in its schema folder.
const PurposesFile = "purposes.yaml"

// SignalsFile is the signals registry of a bundle (risk signals), in its
// schema folder.
const SignalsFile = "signals.yaml"

type fileKind int

const (
	kindPolicy fileKind = iota
	kindSchema
	kindSchemaJSON
	kindEntities
	kindZed      // the SpiceDB schema of the relationship facts
	kindPurposes // the purposes registry (consent)
	kindDormancy // the dormancy rules
	kindSignals  // the signals registry (risk signals)
)

func (k fileKind) inSchemaFolder() bool {
	return k == kindSchema || k == kindSchemaJSON || k == kindZed || k == kindPurposes || k == kindDormancy || k == kindSignals
}

func (k fileKind) label() string {
	switch k {
	case kindPolicy, kindEntities:
		return "policies"
	default:
		return "schema"
	}
}

type sourceFile struct {
	kind fileKind
	path string // as found on disk
	rel  string // relative to its folder, slash-separated
	data []byte
}

// Load reads, parses and validates a bundle from its folders. Every policy
// is type-checked against the schema in strict mode and the entities are
// validated against it too; all problems are returned together as
// LoadErrors. Load has no side effects and may run concurrently with
// decisions that use another bundle.
func Load(ctx context.Context, d Dirs) (*Bundle, error) {
	files, err := collect(d)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := build(d, files)
	if err != nil {
		return nil, err
	}
	b.version.Commit = gitCommit(d.Policies)
	return b, nil
}

// LoadFiles builds a bundle from in-memory files, keyed by their path
// relative to the bundle root: "policies/x.cedar", "schema/x.cedarschema",
// "policies/entities.json". It is what fuzz tests and replay use.
func LoadFiles(files map[string][]byte) (*Bundle, error) {
	var sfs []sourceFile
	for name, data := range files {
		dir, rel, _ := strings.Cut(filepath.ToSlash(name), "/")
		k, ok := classify(rel)
		if !ok {
			continue
		}
		if k.inSchemaFolder() != (dir == "schema") {
			continue
		}
		sfs = append(sfs, sourceFile{kind: k, path: name, rel: rel, data: data})
	}
	sortFiles(sfs)
	return build(Dirs{Policies: "policies", Schema: "schema"}, sfs)
}

func classify(name string) (fileKind, bool) {
	base := filepath.Base(name)
	switch {
	case strings.HasSuffix(base, ".cedarschema.json"):
		return kindSchemaJSON, true
	case strings.HasSuffix(base, ".cedarschema"):
		return kindSchema, true
	case strings.HasSuffix(base, ".cedar"):
		return kindPolicy, true
	case strings.HasSuffix(base, ".zed"):
		return kindZed, true
	case base == PurposesFile:
		return kindPurposes, true
	case base == dormancy.RulesFile:
		return kindDormancy, true
	case base == SignalsFile:
		return kindSignals, true
	case base == "entities.json" || strings.HasSuffix(base, ".entities.json"):
		return kindEntities, true
	}
	return 0, false
}

// collect reads the policies folder recursively and the schema folder's top
// level, skipping hidden folders and files (editor lock files such as Emacs's
// ".#x.cedar" are dangling links).
func collect(d Dirs) ([]sourceFile, error) {
	var out []sourceFile
	seen := map[string]bool{}
	add := func(root, path string, wantSchema bool) error {
		k, ok := classify(path)
		if !ok || k.inSchemaFolder() != wantSchema {
			return nil
		}
		abs, _ := filepath.Abs(path)
		if seen[abs] {
			return nil
		}
		seen[abs] = true
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			rel = filepath.Base(path)
		}
		out = append(out, sourceFile{kind: k, path: path, rel: filepath.ToSlash(rel), data: data})
		return nil
	}
	if !isDir(d.Policies) {
		return nil, fmt.Errorf("policy folder %q: %w", d.Policies, fs.ErrNotExist)
	}
	err := filepath.WalkDir(d.Policies, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if path != d.Policies && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		return add(d.Policies, path, false)
	})
	if err != nil {
		return nil, fmt.Errorf("read policy folder: %w", err)
	}
	entries, err := os.ReadDir(d.Schema)
	if err != nil {
		return nil, fmt.Errorf("read schema folder: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := add(d.Schema, filepath.Join(d.Schema, e.Name()), true); err != nil {
			return nil, err
		}
	}
	sortFiles(out)
	return out, nil
}

func sortFiles(fs []sourceFile) {
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].kind.label() != fs[j].kind.label() {
			return fs[i].kind.label() < fs[j].kind.label()
		}
		return fs[i].rel < fs[j].rel
	})
}

// versionHash is SHA-256 over the canonical content of every file: for each
// file in (folder, path) order its folder label, path and length, then its
// bytes with CRLF line endings normalised to LF.
func versionHash(files []sourceFile) string {
	h := sha256.New()
	for _, f := range files {
		data := bytes.ReplaceAll(f.data, []byte("\r\n"), []byte("\n"))
		fmt.Fprintf(h, "%s/%s\x00%d\x00", f.kind.label(), f.rel, len(data))
		h.Write(data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

var inputPos = regexp.MustCompile(`<input>:(\d+):(\d+)`)

// lineOf pulls the line number out of a cedar-go parse error.
func lineOf(err error) int {
	m := inputPos.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func parseErr(file string, err error) *LoadError {
	msg := inputPos.ReplaceAllString(err.Error(), "column $2")
	return &LoadError{File: file, Line: lineOf(err), Err: errors.New(msg)}
}

func build(d Dirs, files []sourceFile) (*Bundle, error) {
	var errs LoadErrors
	rs, err := loadSchema(files)
	if err != nil {
		var le *LoadError
		if errors.As(err, &le) {
			return nil, LoadErrors{le}
		}
		return nil, err
	}
	v := validate.New(rs, validate.WithStrict())

	b := &Bundle{
		dirs:     d,
		schema:   rs,
		loadedAt: time.Now().UTC(),
		byID:     map[cedar.PolicyID]*Policy{},
		set:      cedar.NewPolicySet(),
		sources:  make(map[string][]byte, len(files)),
	}
	for _, f := range files {
		b.sources[f.kind.label()+"/"+f.rel] = f.data
	}
	// declared records where each id was first seen, valid or not, so that
	// a duplicate of a policy with errors is reported too.
	declared := map[cedar.PolicyID]string{}
	for _, f := range files {
		if f.kind != kindPolicy {
			continue
		}
		list, err := cedar.NewPolicyListFromBytes(f.rel, f.data)
		if err != nil {
			errs = append(errs, parseErr(f.rel, err))
			continue
		}
		for i, cp := range list {
			id := cedar.PolicyID(fmt.Sprintf("%s:%d", f.rel, i))
			if a, ok := cp.Annotations()["id"]; ok {
				id = cedar.PolicyID(a)
			}
			pos := cp.Position()
			if prev, dup := declared[id]; dup {
				errs = append(errs, &LoadError{File: f.rel, Line: pos.Line, PolicyID: string(id),
					Err: fmt.Errorf("duplicate policy id (also at %s)", prev)})
				continue
			}
			declared[id] = fmt.Sprintf("%s:%d", f.rel, pos.Line)
			if err := v.Policy(string(id), (*xast.Policy)(cp.AST())); err != nil {
				errs = append(errs, &LoadError{File: f.rel, Line: pos.Line, PolicyID: string(id), Err: err})
				continue
			}
			p := &Policy{ID: id, File: f.rel, Line: pos.Line, Cedar: cp}
			p.Reason = string(cp.Annotations()["reason"])
			p.Obligation = string(cp.Annotations()["obligation"])
			b.byID[id] = p
			b.policies = append(b.policies, p)
			b.set.Add(id, cp)
		}
	}

	b.entities = types.EntityMap{}
	for _, f := range files {
		if f.kind != kindEntities {
			continue
		}
		var em types.EntityMap
		if err := json.Unmarshal(f.data, &em); err != nil {
			errs = append(errs, &LoadError{File: f.rel, Err: fmt.Errorf("entities: %w", err)})
			continue
		}
		// Entity by entity, in a stable order: validate.Entities stops at
		// the first bad one and drops the detail of what is wrong.
		uids := make([]types.EntityUID, 0, len(em))
		for uid := range em {
			uids = append(uids, uid)
		}
		sort.Slice(uids, func(i, j int) bool { return uids[i].String() < uids[j].String() })
		for _, uid := range uids {
			e := em[uid]
			if _, isAction := rs.Actions[uid]; isAction || uid.Type == "Action" || strings.HasSuffix(string(uid.Type), "::Action") {
				errs = append(errs, &LoadError{File: f.rel, Err: fmt.Errorf("entity %s: action entities come from the schema, not from entity files", uid)})
				continue
			}
			if err := v.Entity(e); err != nil {
				errs = append(errs, &LoadError{File: f.rel, Err: fmt.Errorf("entities do not match the schema: entity %s: %w", uid, err)})
				continue
			}
			if _, dup := b.entities[uid]; dup {
				errs = append(errs, &LoadError{File: f.rel, Err: fmt.Errorf("entity %s is defined in more than one file", uid)})
				continue
			}
			b.entities[uid] = e
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for uid, a := range rs.Actions {
		e := a.Entity
		e.UID = uid
		b.entities[uid] = e
	}
	b.ancestors = closeAncestors(b.entities)
	b.index = buildIndex(b.policies, b.schema, b.ancestors)
	b.names = buildNames(b.schema)
	b.version = Version{Hash: versionHash(files)}
	b.files = make([]string, 0, len(files))
	var zed [][]byte
	for _, f := range files {
		b.files = append(b.files, f.kind.label()+"/"+f.rel)
		if f.kind == kindZed {
			zed = append(zed, f.data)
		}
	}
	b.zed = string(bytes.Join(zed, []byte("\n")))
	for _, f := range files {
		if f.kind != kindPurposes {
			continue
		}
		reg, err := purposes.ParseRegistry(f.data)
		if err != nil {
			return nil, LoadErrors{&LoadError{File: f.kind.label() + "/" + f.rel, Err: err}}
		}
		b.purposes = reg
	}
	for _, f := range files {
		if f.kind != kindDormancy {
			continue
		}
		rules, err := dormancy.ParseRules(f.data)
		if err != nil {
			return nil, LoadErrors{&LoadError{File: f.kind.label() + "/" + f.rel, Err: err}}
		}
		b.dormancy = rules
	}
	for _, f := range files {
		if f.kind != kindSignals {
			continue
		}
		reg, err := signals.ParseRegistry(f.data)
		if err == nil {
			err = b.checkStepUpActions(reg)
		}
		if err != nil {
			return nil, LoadErrors{&LoadError{File: f.kind.label() + "/" + f.rel, Err: err}}
		}
		b.signals = reg
	}
	return b, nil
}

// checkStepUpActions: the actions a failed step-up rule names (its report
// action and the actions it holds back) are actions of the schema; a
// misspelt one would never apply.
func (b *Bundle) checkStepUpActions(reg *signals.Registry) error {
	for _, r := range reg.StepUps {
		for _, a := range append([]string{r.Report}, r.Actions...) {
			if _, _, ok := b.Action(a); !ok {
				return fmt.Errorf("%w: failed_step_ups.%s: action %q is not in the schema", signals.ErrInvalidRegistry, r.Name, a)
			}
		}
	}
	return nil
}

// loadSchema parses every schema file on its own (so that errors name the
// right file and line), then resolves them together.
func loadSchema(files []sourceFile) (*resolved.Schema, error) {
	var human [][]byte
	var names []string
	var jsonFile *sourceFile
	for i, f := range files {
		switch f.kind {
		case kindSchema:
			// No SetFilename: parseErr reads the line from "<input>:L:C".
			var s schema.Schema
			if err := s.UnmarshalCedar(f.data); err != nil {
				return nil, parseErr(f.rel, err)
			}
			human = append(human, f.data)
			names = append(names, f.rel)
		case kindSchemaJSON:
			if jsonFile != nil {
				return nil, &LoadError{File: f.rel, Err: errors.New("only one JSON schema file is supported; use the human-readable form to split a schema")}
			}
			jsonFile = &files[i]
			names = append(names, f.rel)
		}
	}
	if len(human) > 0 && jsonFile != nil {
		return nil, &LoadError{File: jsonFile.rel, Err: errors.New("mixing *.cedarschema and *.cedarschema.json files is not supported")}
	}
	var s schema.Schema
	switch {
	case jsonFile != nil:
		if err := s.UnmarshalJSON(jsonFile.data); err != nil {
			return nil, &LoadError{File: jsonFile.rel, Err: err}
		}
	case len(human) > 0:
		if err := s.UnmarshalCedar(bytes.Join(human, []byte("\n"))); err != nil {
			return nil, joinedSchemaErr(names, human, err)
		}
	default:
		return nil, ErrNoSchema
	}
	rs, err := s.Resolve()
	if err != nil {
		return nil, &LoadError{File: strings.Join(names, "+"), Err: fmt.Errorf("resolve schema: %w", err)}
	}
	return rs, nil
}

// joinedSchemaErr maps an error in the concatenation of the human-readable
// schema files (each of which parsed on its own, so typically a declaration
// repeated across files) back to the file and line it points at.
func joinedSchemaErr(names []string, parts [][]byte, err error) *LoadError {
	line := lineOf(err)
	start := 1
	for i, p := range parts {
		n := bytes.Count(p, []byte("\n")) + 1 // its lines, the last ended by the separator
		if line >= start && line < start+n {
			le := parseErr(names[i], err)
			le.Line = line - start + 1
			return le
		}
		start += n
	}
	return &LoadError{File: strings.Join(names, "+"), Err: err}
}

// gitCommit returns the commit of the Git work tree holding dir, or "".
func gitCommit(dir string) string {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return ""
	}
	head, err := repo.Head()
	if err != nil {
		return ""
	}
	return head.Hash().String()
}

// closeAncestors computes, for every entity, the transitive closure of its
// parents (an entity is not its own ancestor).
func closeAncestors(em types.EntityMap) map[types.EntityUID][]types.EntityUID {
	out := make(map[types.EntityUID][]types.EntityUID, len(em))
	var visit func(uid types.EntityUID, seen map[types.EntityUID]bool)
	visit = func(uid types.EntityUID, seen map[types.EntityUID]bool) {
		e, ok := em[uid]
		if !ok {
			return
		}
		for p := range e.Parents.All() {
			if !seen[p] {
				seen[p] = true
				visit(p, seen)
			}
		}
	}
	for uid := range em {
		seen := map[types.EntityUID]bool{}
		visit(uid, seen)
		delete(seen, uid)
		if len(seen) == 0 {
			continue
		}
		list := make([]types.EntityUID, 0, len(seen))
		for a := range seen {
			list = append(list, a)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].String() < list[j].String() })
		out[uid] = list
	}
	return out
}
