package pattern

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		template, path string
		ok             bool
		vars           map[string]string
	}{
		{"/v1/refunds", "/v1/refunds", true, nil},
		{"/v1/refunds", "/v1/refunds/", false, nil},
		{"/v1/refunds", "/v1/Refunds", false, nil},
		{"/v1/charges/{id}", "/v1/charges/ch_1", true, map[string]string{"id": "ch_1"}},
		{"/v1/charges/{id}", "/v1/charges/ch_1/capture", false, nil},
		{"/v1/charges/{id}", "/v1/charges/", false, nil},
		{"/v1/charges/{id}", "/v1/charges/ch.1", false, nil},
		{"/v1/charges/{id}", "/v1/charges/%63h", false, nil},
		{"/v1/charges/{id}/capture", "/v1/charges/ch_1/capture", true, map[string]string{"id": "ch_1"}},
		{"/2010-04-01/Accounts/{sid}/Messages.json", "/2010-04-01/Accounts/AC123/Messages.json", true, map[string]string{"sid": "AC123"}},
		{"/2010-04-01/Accounts/{sid}/Messages.json", "/2010-04-01/Accounts/AC123/Messages.xml", false, nil},
		{"/2010-04-01/Accounts/{sid}/Messages/{msg}.json", "/2010-04-01/Accounts/AC1/Messages/SM9.json", true, map[string]string{"sid": "AC1", "msg": "SM9"}},
		{"/2010-04-01/Accounts/{sid}/Messages/{msg}.json", "/2010-04-01/Accounts/AC1/Messages/SM9.x.json", false, nil},
		{"/emails/{id}", "/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c", true, map[string]string{"id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}},
		{"/v1/x{id}y", "/v1/xABCy", true, map[string]string{"id": "ABC"}},
		{"/v1/x{id}y", "/v1/xy", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.template+" "+tt.path, func(t *testing.T) {
			p := MustCompile(tt.template)
			vars, ok := p.Match(tt.path)
			if ok != tt.ok {
				t.Fatalf("Match = %v, want %v", ok, tt.ok)
			}
			if len(vars) != len(tt.vars) {
				t.Fatalf("vars = %v, want %v", vars, tt.vars)
			}
			for k, v := range tt.vars {
				if vars[k] != v {
					t.Fatalf("vars = %v, want %v", vars, tt.vars)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, bad := range []string{"", "v1/refunds", "/", "/v1//refunds", "/v1/refunds/", "/v1/{id", "/v1/{}", "/v1/{a}{b}", "/v1/../x", "/v1/%2F", "/v1/a b", "/v1/{a.b}"} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%q) accepted", bad)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("/v1/charges/{id}/capture", "/v1/charges/ch_1/capture")
	f.Add("/a/{x}.json", "/a/b.json")
	f.Fuzz(func(t *testing.T, template, path string) {
		p, err := Compile(template)
		if err != nil {
			return
		}
		vars, ok := p.Match(path)
		if !ok {
			return
		}
		// Whatever matched must be free of the characters the matcher
		// promises never to let through a placeholder.
		for _, v := range vars {
			for i := 0; i < len(v); i++ {
				if !isIDChar(v[i]) {
					t.Fatalf("%q matched %q with var %q", template, path, v)
				}
			}
		}
	})
}
