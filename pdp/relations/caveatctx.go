package relations

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// toStruct converts caveat context to the protobuf Struct SpiceDB takes.
// Besides what structpb accepts (nil, bools, numbers, strings, []byte,
// []any, map[string]any) it takes time.Time (sent as RFC 3339, SpiceDB's
// form of a timestamp), time.Duration (as "1h2m3s"), []string and
// map[string]string.
func toStruct(m map[string]any) (*structpb.Struct, error) {
	fields := make(map[string]*structpb.Value, len(m))
	for k, v := range m {
		pv, err := toValue(v)
		if err != nil {
			return nil, fmt.Errorf("caveat context %q: %w", k, err)
		}
		fields[k] = pv
	}
	return &structpb.Struct{Fields: fields}, nil
}

func toValue(v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case time.Time:
		return structpb.NewStringValue(x.UTC().Format(time.RFC3339Nano)), nil
	case *time.Time:
		if x == nil {
			return structpb.NewNullValue(), nil
		}
		return structpb.NewStringValue(x.UTC().Format(time.RFC3339Nano)), nil
	case time.Duration:
		return structpb.NewStringValue(x.String()), nil
	case []string:
		vals := make([]*structpb.Value, len(x))
		for i, s := range x {
			vals[i] = structpb.NewStringValue(s)
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vals}), nil
	case map[string]string:
		fields := make(map[string]*structpb.Value, len(x))
		for k, s := range x {
			fields[k] = structpb.NewStringValue(s)
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields}), nil
	case map[string]any:
		s, err := toStruct(x)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	case []any:
		vals := make([]*structpb.Value, len(x))
		for i, e := range x {
			pv, err := toValue(e)
			if err != nil {
				return nil, err
			}
			vals[i] = pv
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vals}), nil
	default:
		return structpb.NewValue(v)
	}
}

// canonicalContext encodes caveat context so that equal values give equal
// strings: deterministic protobuf of the converted Struct (map keys sorted,
// every number a double as SpiceDB will see it).
func canonicalContext(m map[string]any) (string, error) {
	s, err := toStruct(m)
	if err != nil {
		return "", err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("caveat context: %w", err)
	}
	return string(b), nil
}
