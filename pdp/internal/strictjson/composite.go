package strictjson

// CompositeEnd returns the length of the JSON object or array p starts
// with, found by its brackets outside strings (the value is not
// validated: callers that need it valid check it after), or -1 when p
// does not start with one or it does not end.
func CompositeEnd(p []byte) int {
	if len(p) == 0 || p[0] != '{' && p[0] != '[' {
		return -1
	}
	depth, inString := 0, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}
