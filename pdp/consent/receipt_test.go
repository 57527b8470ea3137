package consent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// receiptKey is a fixed test key, so that fuzzing knows every receipt it
// signed.
func receiptKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

// receiptEvent is dave granting marketing for carol, his ward.
func receiptEvent() Event {
	exp := time.Date(2027, 6, 14, 0, 0, 0, 0, time.UTC)
	return Event{
		Position: 42, ID: "ev-7f3a", Type: EventGiven, GrantID: "g-mkt-dave",
		Subject: Ref{Type: "user", ID: "carol"}, Actor: Ref{Type: "user", ID: "dave"}, Delegation: "del-dave-carol",
		Application: "marketing-hub", Purpose: "marketing", PurposeVersion: 3, Applications: []string{"marketing-hub"},
		Jurisdiction: "DE",
		Notice:       Notice{URI: "https://northbank.example/privacy/marketing", Version: 2, Hash: "sha256:9f86d081", Language: "de"},
		Channel:      "app",
		At:           time.Date(2026, 2, 1, 10, 30, 0, 0, time.UTC),
		RecordedAt:   time.Date(2026, 2, 1, 10, 30, 1, 250_000_000, time.UTC),
		Expires:      &exp,
	}
}

func TestReceiptClaims(t *testing.T) {
	pub, _ := receiptKey(1)
	c := NewReceipt(receiptEvent(), "Northbank AG", pub)
	got, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":"KI-CR-v1.1.0","jurisdiction":"DE","consentTimestamp":1769941800,"collectionMethod":"app",` +
		`"consentReceiptID":"ev-7f3a","publicKey":"` + base64.RawURLEncoding.EncodeToString(pub) + `","language":"de",` +
		`"piiPrincipalId":"user:carol","piiControllers":[{"piiController":"Northbank AG"}],` +
		`"policyUrl":"https://northbank.example/privacy/marketing",` +
		`"services":[{"service":"marketing-hub","purposes":[{"purpose":"marketing","purposeCategory":["marketing"],` +
		`"consentType":"EXPLICIT","piiCategory":[],"primaryPurpose":true,"termination":"2027-06-14T00:00:00Z","thirdPartyDisclosure":false}]}],` +
		`"sensitive":false,"spiCat":[],` +
		`"pdp":{"ledger_position":42,"event_type":"given","grant_id":"g-mkt-dave","purpose_version":3,"notice_version":2,` +
		`"notice_hash":"sha256:9f86d081","actor":"user:dave","delegation":"del-dave-carol","recorded_at":"2026-02-01T10:30:01.25Z"}}`
	if string(got) != want {
		t.Errorf("claims:\n got %s\nwant %s", got, want)
	}

	for typ, want := range map[EventType]string{
		EventGiven: ConsentTypeExplicit, EventRenewed: ConsentTypeExplicit,
		EventWithdrawn: ConsentTypeWithdrawn, EventRevoked: ConsentTypeWithdrawn, EventRefused: ConsentTypeRefused,
	} {
		e := receiptEvent()
		e.Type, e.Expires, e.Applications = typ, nil, nil
		c := NewReceipt(e, "Northbank AG", nil)
		p := c.Services[0].Purposes[0]
		if p.ConsentType != want || p.Termination != TerminationWithdrawal || c.Services[0].Service != AllApplications || c.PublicKey != "" {
			t.Errorf("%s: consentType %q termination %q service %q publicKey %q", typ, p.ConsentType, p.Termination, c.Services[0].Service, c.PublicKey)
		}
	}
}

func TestReceiptRoundTrip(t *testing.T) {
	pub, priv := receiptKey(1)
	c := NewReceipt(receiptEvent(), "Northbank AG", pub)
	jws, err := SignReceipt(priv, "receipts-2026", c)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(header) != `{"alg":"EdDSA","typ":"JWT","kid":"receipts-2026"}` {
		t.Errorf("header %s", header)
	}
	got, err := VerifyReceipt(pub, jws)
	if err != nil {
		t.Fatalf("VerifyReceipt: %v", err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, c)
	}
	if kid, err := ReceiptKeyID(jws); err != nil || kid != "receipts-2026" {
		t.Errorf("ReceiptKeyID = %q, %v", kid, err)
	}

	// Nil lists are signed as empty arrays.
	c.SPICat, c.Services[0].Purposes[0].PIICategory = nil, nil
	jws, err = SignReceipt(priv, "", c)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(jws, ".")[1])
	if bytes.Contains(payload, []byte("null")) {
		t.Errorf("payload has a null: %s", payload)
	}
	if c.SPICat != nil {
		t.Error("SignReceipt changed the caller's claims")
	}
	if _, err := VerifyReceipt(pub, jws); err != nil {
		t.Errorf("VerifyReceipt without kid: %v", err)
	}
}

func TestReceiptRefused(t *testing.T) {
	pub, priv := receiptKey(1)
	otherPub, otherPriv := receiptKey(2)
	c := NewReceipt(receiptEvent(), "Northbank AG", pub)
	jws, err := SignReceipt(priv, "k1", c)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jws, ".")
	enc := base64.RawURLEncoding.EncodeToString
	sign := func(header, payload string) string {
		in := enc([]byte(header)) + "." + enc([]byte(payload))
		return in + "." + enc(ed25519.Sign(priv, []byte(in)))
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := bytes.Replace(payload, []byte(`"EXPLICIT"`), []byte(`"REFUSED!"`), 1)
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[5] ^= 1
	otherKeyClaims := NewReceipt(receiptEvent(), "Northbank AG", otherPub)
	byOther, _ := SignReceipt(otherPriv, "k1", otherKeyClaims)
	claimsOther, _ := SignReceipt(priv, "k1", otherKeyClaims) // signed by priv, names otherPub

	for _, tc := range []struct {
		name, jws, want string
		pub             ed25519.PublicKey
		sigErr          bool
	}{
		{name: "tampered payload", jws: parts[0] + "." + enc(tampered) + "." + parts[2], sigErr: true},
		{name: "tampered header", jws: enc([]byte(`{"alg":"EdDSA","typ":"JWT","kid":"k2"}`)) + "." + parts[1] + "." + parts[2], sigErr: true},
		{name: "tampered signature", jws: parts[0] + "." + parts[1] + "." + enc(sig), sigErr: true},
		{name: "wrong key", jws: jws, pub: otherPub, sigErr: true},
		{name: "signed by another key", jws: byOther, sigErr: true},
		{name: "alg none", jws: enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", want: `algorithm "none" refused`},
		{name: "alg none with signature", jws: enc([]byte(`{"alg":"none"}`)) + "." + parts[1] + "." + parts[2], want: `algorithm "none" refused`},
		{name: "alg HS256", jws: enc([]byte(`{"alg":"HS256"}`)) + "." + parts[1] + "." + parts[2], want: `algorithm "HS256" refused`},
		{name: "no alg", jws: enc([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], want: `algorithm "" refused`},
		{name: "crit", jws: sign(`{"alg":"EdDSA","crit":["exp"],"exp":1}`, string(payload)), want: "critical header"},
		{name: "other typ", jws: sign(`{"alg":"EdDSA","typ":"JOSE+JSON"}`, string(payload)), want: `type "JOSE+JSON"`},
		{name: "two parts", jws: parts[0] + "." + parts[1], want: "2 parts"},
		{name: "four parts", jws: jws + ".x", want: "4 parts"},
		{name: "empty", jws: "", want: "1 parts"},
		{name: "padding", jws: jws + "=", want: "unexpected character '='"},
		{name: "line break in the signature", jws: jws[:len(jws)-4] + "\n" + jws[len(jws)-4:], want: `unexpected character '\n'`},
		{name: "short signature", jws: parts[0] + "." + parts[1] + "." + enc(sig[:32]), want: "signature has 32 bytes"},
		{name: "header not base64", jws: "e!." + parts[1] + "." + parts[2], want: "unexpected character '!'"},
		{name: "header not JSON", jws: enc([]byte("alg=EdDSA")) + "." + parts[1] + "." + parts[2], want: "header:"},
		{name: "payload not JSON", jws: sign(`{"alg":"EdDSA"}`, "hello"), want: "claims are not a consent receipt"},
		{name: "payload of another kind", jws: sign(`{"alg":"EdDSA"}`, `{"sub":"carol"}`), want: `version ""`},
		{name: "payload with trailing data", jws: sign(`{"alg":"EdDSA"}`, string(payload)+"{}"), want: "data after"},
		{name: "claims name another key", jws: claimsOther, want: "another public key"},
		{name: "too long", jws: strings.Repeat("a", maxReceiptSize+1), want: "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.pub
			if key == nil {
				key = pub
			}
			c, err := VerifyReceipt(key, tc.jws)
			if err == nil {
				t.Fatalf("VerifyReceipt accepted it: %+v", c)
			}
			if !errors.Is(err, ErrReceiptInvalid) {
				t.Errorf("error %v does not match ErrReceiptInvalid", err)
			}
			if tc.sigErr != errors.Is(err, ErrReceiptSignature) {
				t.Errorf("error %v: matches ErrReceiptSignature %v, want %v", err, !tc.sigErr, tc.sigErr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if !reflect.DeepEqual(c, ReceiptClaims{}) {
				t.Errorf("claims returned with the error: %+v", c)
			}
		})
	}
}

func TestReceiptBadKeys(t *testing.T) {
	_, priv := receiptKey(1)
	if _, err := SignReceipt(priv[:32], "k", ReceiptClaims{}); err == nil {
		t.Error("SignReceipt with a 32-byte key: no error")
	}
	jws, err := SignReceipt(priv, "k", NewReceipt(receiptEvent(), "Northbank AG", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(nil, jws); err == nil {
		t.Error("VerifyReceipt with no key: no error")
	}
}

// FuzzVerifyReceipt: any input, no panic; only the receipts signed here
// verify (the fuzzer cannot forge Ed25519, and every receipt has exactly
// one encoding that verifies).
func FuzzVerifyReceipt(f *testing.F) {
	pub, priv := receiptKey(1)
	otherPub, otherPriv := receiptKey(2)
	signed := map[string]bool{}
	for i, e := range []Event{receiptEvent(), {ID: "x", Type: EventRefused, Subject: Ref{Type: "user", ID: "ivan"}}} {
		for _, k := range []struct {
			pub  ed25519.PublicKey
			priv ed25519.PrivateKey
		}{{pub, priv}, {otherPub, otherPriv}} {
			jws, err := SignReceipt(k.priv, "k"+string(rune('0'+i)), NewReceipt(e, "Northbank AG", k.pub))
			if err != nil {
				f.Fatal(err)
			}
			if k.pub.Equal(pub) {
				signed[jws] = true
			}
			f.Add(jws)
		}
	}
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := VerifyReceipt(pub, in)
		if err != nil {
			if !errors.Is(err, ErrReceiptInvalid) {
				t.Fatalf("error %v does not match ErrReceiptInvalid", err)
			}
			return
		}
		if !signed[in] {
			t.Fatalf("verified a receipt nobody signed: %q", in)
		}
		if c.Version != ReceiptVersion {
			t.Fatalf("verified claims of version %q", c.Version)
		}
		_, _ = ReceiptKeyID(in)
	})
}
