package signals

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerifySET(t *testing.T) {
	key := newKey(t, "k1")
	other := newKey(t, "k1")
	v := testVerifier(t, key)
	good := setClaims("jti-1", "credential-compromise", issSub("bob"), testNow)

	s, err := v.Verify([]byte(sign(t, key, good)), testNow)
	if err != nil {
		t.Fatalf("a good SET: %v", err)
	}
	if s.JTI != "jti-1" || len(s.Events) != 1 || s.Events[0].Subject.Sub != "bob" || !s.Events[0].Time.Equal(testNow) {
		t.Fatalf("decoded %+v", s)
	}

	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	noTyp := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.Key}, (&jose.SignerOptions{}).WithType("JWT"))
		jws, _ := signer.Sign([]byte(`{"iss":"` + testIss + `"}`))
		out, _ := jws.CompactSerialize()
		return out
	}
	hs256 := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, (&jose.SignerOptions{}).WithType(SETType))
		jws, _ := signer.Sign([]byte(`{"iss":"` + testIss + `"}`))
		out, _ := jws.CompactSerialize()
		return out
	}
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"secevent+jwt"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+testIss+`"}`)) + "."
	for _, tc := range []struct {
		name, token, code string
	}{
		{"wrong key", sign(t, other, good), ErrCodeInvalidKey},
		{"unknown kid", sign(t, newKey(t, "k9"), good), ErrCodeInvalidKey},
		{"wrong issuer", sign(t, key, with("iss", "https://evil.example/")), ErrCodeInvalidIssuer},
		{"wrong audience", sign(t, key, with("aud", "https://other.example/")), ErrCodeInvalidAudience},
		{"no audience", sign(t, key, with("aud", nil)), ErrCodeInvalidAudience},
		{"stale", sign(t, key, with("iat", testNow.Add(-25*time.Hour).Unix())), ErrCodeInvalidRequest},
		{"future", sign(t, key, with("iat", testNow.Add(time.Hour).Unix())), ErrCodeInvalidRequest},
		{"expired", sign(t, key, with("exp", testNow.Add(-time.Hour).Unix())), ErrCodeInvalidRequest},
		{"no iat", sign(t, key, with("iat", nil)), ErrCodeInvalidRequest},
		{"no jti", sign(t, key, with("jti", nil)), ErrCodeInvalidRequest},
		{"no events", sign(t, key, with("events", map[string]any{})), ErrCodeInvalidRequest},
		{"no subject", sign(t, key, with("sub_id", nil)), ErrCodeInvalidRequest},
		{"bad subject", sign(t, key, with("sub_id", map[string]any{"format": "iss_sub", "iss": idpIss})), ErrCodeInvalidRequest},
		{"malformed", "not.a.jwt", ErrCodeInvalidRequest},
		{"two parts", "abc.def", ErrCodeInvalidRequest},
		{"wrong typ", noTyp(), ErrCodeInvalidRequest},
		{"hmac", hs256(), ErrCodeInvalidRequest},
		{"alg none", unsigned, ErrCodeInvalidRequest},
		{"oversized", sign(t, key, with("txn", strings.Repeat("x", DefaultMaxSETBytes))), ErrCodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify([]byte(tc.token), testNow)
			var se *SETError
			if !errors.As(err, &se) || se.Code != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if se.Description == "" {
				t.Fatal("no description")
			}
		})
	}
}

func TestCheckPushToken(t *testing.T) {
	key := newKey(t, "k1")
	sum := sha256.Sum256([]byte("push-secret"))
	v, err := NewVerifier([]Transmitter{
		{Issuer: testIss, Audience: []string{testAud}, Keys: StaticKeys{key.Public()}, PushToken: sum[:]},
		{Issuer: "https://open.example/", Audience: []string{testAud}, Keys: StaticKeys{key.Public()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		iss, bearer string
		ok          bool
	}{{testIss, "push-secret", true}, {testIss, "", false}, {testIss, "wrong", false}, {"https://open.example/", "", true}} {
		err := v.CheckPushToken(tc.iss, tc.bearer)
		var se *SETError
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &se) || se.Code != ErrCodeAuthentication)) {
			t.Errorf("%s with %q: %v", tc.iss, tc.bearer, err)
		}
	}
}

func TestSubjectIdentifiers(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    SubjectID
		ok   bool
	}{
		{"iss_sub", SubjectID{Format: FormatIssSub, Iss: idpIss, Sub: "bob"}, true},
		{"iss_sub without sub", SubjectID{Format: FormatIssSub, Iss: idpIss}, false},
		{"email", SubjectID{Format: FormatEmail, Email: "bob@example.com"}, true},
		{"email empty", SubjectID{Format: FormatEmail}, false},
		{"phone", SubjectID{Format: FormatPhoneNumber, PhoneNumber: "+4930123"}, true},
		{"opaque", SubjectID{Format: FormatOpaque, ID: "x"}, true},
		{"opaque empty", SubjectID{Format: FormatOpaque}, false},
		{"complex", SubjectID{Format: FormatComplex, User: &SubjectID{Format: FormatIssSub, Iss: idpIss, Sub: "alice"}, Session: &SubjectID{Format: FormatOpaque, ID: "s1"}}, true},
		{"complex empty", SubjectID{Format: FormatComplex}, false},
		{"complex nested", SubjectID{Format: FormatComplex, User: &SubjectID{Format: FormatComplex}}, false},
		{"aliases", SubjectID{Format: FormatAliases, Identifiers: []SubjectID{{Format: FormatEmail, Email: "a@b"}}}, true},
		{"unknown format", SubjectID{Format: "x-custom"}, true},
		{"no format", SubjectID{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.s.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// FuzzVerifySET: whatever the body, Verify returns a SET or a *SETError
// with a code, and never panics.
func FuzzVerifySET(f *testing.F) {
	key := newKey(f, "k1")
	v := testVerifier(f, key)
	f.Add(sign(f, key, setClaims("j", "credential-compromise", issSub("bob"), testNow)))
	f.Add(sign(f, key, map[string]any{"iss": testIss, "aud": []string{testAud}, "iat": 1.5e9, "jti": "x", "events": map[string]any{"urn:x": 1}}))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		s, err := v.Verify([]byte(token), testNow)
		if err != nil {
			var se *SETError
			if !errors.As(err, &se) || se.Code == "" {
				t.Fatalf("error %v is not a SETError", err)
			}
			return
		}
		if s.JTI == "" || len(s.Events) == 0 {
			t.Fatalf("accepted an incomplete SET %+v", s)
		}
	})
}

// FuzzDecodeClaims feeds verified-looking payloads straight to the claims
// decoder (past the signature, where most of the parsing is).
func FuzzDecodeClaims(f *testing.F) {
	tr := Transmitter{Issuer: testIss, Audience: []string{testAud}, MaxAge: time.Hour, Skew: time.Minute}
	f.Add([]byte(`{"iss":"` + testIss + `","aud":"` + testAud + `","iat":1796644800,"jti":"a","sub_id":{"format":"email","email":"a@b"},"events":{"https://schemas.openid.net/secevent/caep/event-type/session-revoked":{"event_timestamp":1796644800}}}`))
	f.Add([]byte(`{"aud":["x"],"iat":"x","events":{"":{}}}`))
	f.Add([]byte(`{"sub_id":{"format":"complex","user":{"format":"aliases","identifiers":[]}}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, err := decodeClaims(tr, payload, "t", time.Unix(1796644800, 0))
		if err != nil {
			var se *SETError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a SETError", err)
			}
			return
		}
		for _, e := range s.Events {
			if e.Subject != nil && e.Subject.Validate() != nil {
				t.Fatalf("accepted an invalid subject %+v", e.Subject)
			}
		}
	})
}
