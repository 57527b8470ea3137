package pdp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// errInvalidValue marks a property or context value that does not fit the
// type the schema declares for it.
var errInvalidValue = errors.New("invalid value")

// entityResolver maps a type name found in a value ({"type":…,"id":…}) to a
// schema entity type.
type entityResolver func(name string) (types.EntityType, bool)

// toRecord converts a JSON object to a Cedar record shaped by the schema's
// record type: declared attributes are converted, undeclared ones dropped.
func toRecord(shape resolved.RecordType, m map[string]any, res entityResolver, path string) (types.Record, error) {
	if len(m) == 0 {
		return types.Record{}, nil // equal to an empty record, without NewRecord's copy and hashing
	}
	rm := make(types.RecordMap, len(m))
	if err := addAttrs(rm, shape, m, res, path); err != nil {
		return types.Record{}, err
	}
	if len(rm) == 0 {
		return types.Record{}, nil
	}
	return types.NewRecord(rm), nil
}

// addAttrs converts the declared attributes of m into rm.
func addAttrs(rm types.RecordMap, shape resolved.RecordType, m map[string]any, res entityResolver, path string) error {
	for k, v := range m {
		attr, ok := shape[types.String(k)]
		if !ok || v == nil {
			continue
		}
		cv, err := toValue(attr.Type, v, res, path+"."+k)
		if err != nil {
			return err
		}
		rm[types.String(k)] = cv
	}
	return nil
}

// toValue converts one JSON value (as decoded with UseNumber, or from YAML)
// to the Cedar value of the declared type.
func toValue(t resolved.IsType, v any, res entityResolver, path string) (types.Value, error) {
	bad := func(want string) error {
		return fmt.Errorf("%w: %s must be %s, got %s", errInvalidValue, path, want, jsonKind(v))
	}
	switch t := t.(type) {
	case resolved.StringType:
		s, ok := v.(string)
		if !ok {
			return nil, bad("a string")
		}
		return types.String(s), nil
	case resolved.LongType:
		n, ok := toInt64(v)
		if !ok {
			return nil, bad("an integer")
		}
		return types.Long(n), nil
	case resolved.BoolType:
		b, ok := v.(bool)
		if !ok {
			return nil, bad("a boolean")
		}
		return types.Boolean(b), nil
	case resolved.SetType:
		arr, ok := v.([]any)
		if !ok {
			return nil, bad("an array")
		}
		vals := make([]types.Value, 0, len(arr))
		for i, e := range arr {
			cv, err := toValue(t.Element, e, res, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			vals = append(vals, cv)
		}
		return types.NewSet(vals...), nil
	case resolved.RecordType:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, bad("an object")
		}
		return toRecord(t, m, res, path)
	case resolved.EntityType:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, bad(`an entity reference {"type":…,"id":…}`)
		}
		typ, _ := m["type"].(string)
		id, _ := m["id"].(string)
		et, known := res(typ)
		if !known || id == "" {
			return nil, bad(`an entity reference {"type":…,"id":…} of a declared type`)
		}
		return types.NewEntityUID(et, types.String(id)), nil
	case resolved.ExtensionType:
		return toExtension(string(t), v, bad)
	}
	return nil, fmt.Errorf("%w: %s has a type the engine cannot convert", errInvalidValue, path)
}

func toExtension(name string, v any, bad func(string) error) (types.Value, error) {
	s, isString := v.(string)
	if n, ok := v.(json.Number); ok && name == "decimal" {
		s, isString = n.String(), true
		if !strings.ContainsAny(s, ".eE") {
			s += ".0" // Cedar decimals are written with a point: 250 → 250.0
		}
	}
	if !isString {
		return nil, bad("a string holding a " + name)
	}
	var (
		val types.Value
		err error
	)
	switch name {
	case "ipaddr":
		val, err = types.ParseIPAddr(s)
	case "decimal":
		val, err = types.ParseDecimal(s)
	case "datetime":
		val, err = types.ParseDatetime(s)
	case "duration":
		val, err = types.ParseDuration(s)
	default:
		return nil, bad("a supported extension value")
	}
	if err != nil {
		return nil, bad("a valid " + name)
	}
	return val, nil
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		f, err := n.Float64()
		if err != nil {
			return 0, false
		}
		return floatToInt(f)
	case float64:
		return floatToInt(n)
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

func floatToInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f > math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64, uint64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// sortedUnique sorts and deduplicates a slice of strings; nil becomes empty.
func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return []string{}
	}
	sort.Strings(s)
	out := s[:1]
	for _, x := range s[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}
