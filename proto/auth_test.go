package proto

import "testing"

func TestCheckKeyProof(t *testing.T) {
	key, other := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	want := RegisterProof(key, "daemon-a", 42)
	for _, tc := range []struct {
		name       string
		key, proof []byte
		why        string
	}{
		{"right key", key, RegisterProof(key, "daemon-a", 42), ""},
		{"other key", key, RegisterProof(other, "daemon-a", 42), ErrKeyMismatch},
		{"other name", key, RegisterProof(key, "daemon-b", 42), ErrKeyMismatch},
		{"other epoch", key, RegisterProof(key, "daemon-a", 43), ErrKeyMismatch},
		{"no proof", key, nil, ErrKeyRequired},
		{"no key anywhere", nil, nil, ""},
		{"proof without a key here", nil, want, ErrKeyUnexpected},
	} {
		expected := RegisterProof(tc.key, "daemon-a", 42)
		if got := CheckKeyProof(tc.key, tc.proof, expected); got != tc.why {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.why)
		}
	}
	if string(HelloProof(key, "daemon-a", 42)) == string(want) {
		t.Error("hello and register proofs are interchangeable")
	}
}
