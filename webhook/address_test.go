package webhook_test

import (
	"testing"

	eventflow "github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/webhook"
)

func TestValidateURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		loopback bool
		ok       bool
	}{
		{"https://hooks.example.test/orders", false, true},
		{"https://hooks.example.test:8443/orders?x=1", false, true},
		{"HTTPS://hooks.example.test", false, true},
		{"https://[2001:db8::1]/hook", false, true},
		{"http://hooks.example.test/orders", false, false},
		{"http://hooks.example.test/orders", true, false},
		{"http://127.0.0.1:9000/hook", false, false},
		{"http://127.0.0.1:9000/hook", true, true},
		{"http://localhost:9000/hook", true, true},
		{"http://[::1]:9000/hook", true, true},
		{"http://10.0.0.1/hook", true, false},
		{"https://user:pass@hooks.example.test/", false, false},
		{"https://user@hooks.example.test/", false, false},
		{"https://hooks.example.test:0/", false, false},
		{"https://hooks.example.test:70000/", false, false},
		{"https://hooks.example.test/#frag", false, false},
		{"ftp://hooks.example.test/", false, false},
		{"//hooks.example.test/", false, false},
		{"hooks.example.test/orders", false, false},
		{"https:///path", false, false},
		{"https:opaque", false, false},
		{"", false, false},
		{"https://[::1", false, false},
	} {
		err := webhook.ValidateURL(tc.url, tc.loopback)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateURL(%q, %v) = %v, want ok=%v", tc.url, tc.loopback, err, tc.ok)
		}
		if err != nil && eventflow.ErrorCode(err) != eventflow.EINVALID {
			t.Errorf("ValidateURL(%q): code %q, want %q", tc.url, eventflow.ErrorCode(err), eventflow.EINVALID)
		}
	}
}
