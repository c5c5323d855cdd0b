package coordinator

import "testing"

func TestLookupByNameIDAndPrefix(t *testing.T) {
	r := newRegistry(nil)
	for _, d := range []*dataflowRec{
		{ID: "0b6e5c1a-1111-4000-8000-000000000001", Name: "demo"},
		{ID: "0b6e9d2f-2222-4000-8000-000000000002", Name: "other"},
		{ID: "7f00aa00-3333-4000-8000-000000000003", Name: "cafe"},
	} {
		if err := r.add(d, nil); err != nil {
			t.Fatal(err)
		}
	}
	for ref, want := range map[string]string{
		"demo":                                 "0b6e5c1a-1111-4000-8000-000000000001",
		"0b6e9d2f-2222-4000-8000-000000000002": "0b6e9d2f-2222-4000-8000-000000000002",
		"0b6e5":                                "0b6e5c1a-1111-4000-8000-000000000001", // a unique prefix
		"0B6E9D":                               "0b6e9d2f-2222-4000-8000-000000000002",
		"7f00":                                 "7f00aa00-3333-4000-8000-000000000003",
		"cafe":                                 "7f00aa00-3333-4000-8000-000000000003", // a name before any prefix
		"0b6e":                                 "",                                     // two match
		"7f0":                                  "",                                     // too short
		"nope":                                 "",
	} {
		got, ok := r.lookup(ref)
		if got != want || ok != (want != "") {
			t.Errorf("lookup(%q) = %q, %v; want %q", ref, got, ok, want)
		}
	}
}

func TestNotFoundSaysWhy(t *testing.T) {
	r := newRegistry(nil)
	for _, d := range []*dataflowRec{
		{ID: "0b6e5c1a-1111-4000-8000-000000000001", Name: "demo"},
		{ID: "0b6e9d2f-2222-4000-8000-000000000002", Name: "other"},
	} {
		if err := r.add(d, nil); err != nil {
			t.Fatal(err)
		}
	}
	for ref, want := range map[string]string{
		"nope": `no dataflow "nope"`,
		"ffff": `no dataflow "ffff"`,
		"0b6":  `no dataflow "0b6": a UUID prefix needs at least 4 characters`,
		"0b6e": `no dataflow "0b6e": the prefix starts 2 UUIDs: 0b6e5c1a-1111-4000-8000-000000000001 (demo), ` +
			`0b6e9d2f-2222-4000-8000-000000000002 (other); give more characters`,
	} {
		if got := r.notFound(ref); got != want {
			t.Errorf("notFound(%q) = %q\nwant %q", ref, got, want)
		}
	}
}

// A generated name is never one a dataflow had, even a finished one.
func TestGeneratedNameIsNew(t *testing.T) {
	r := newRegistry(nil)
	if err := r.add(&dataflowRec{ID: "0b6e5c1a-1111-4000-8000-000000000001", Name: "gentle-otter", StartErr: "x"}, nil); err != nil {
		t.Fatal(err)
	}
	names := []string{"gentle-otter", "gentle-otter", "fierce-walrus"}
	d := &dataflowRec{ID: "0b6e9d2f-2222-4000-8000-000000000002"}
	if err := r.add(d, func(i int) string { return names[i] }); err != nil {
		t.Fatal(err)
	}
	if d.Name != "fierce-walrus" {
		t.Errorf("generated %q, want the first name no dataflow had", d.Name)
	}
}
