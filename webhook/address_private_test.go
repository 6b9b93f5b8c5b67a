package webhook_test

import (
	"testing"

	eventflow "github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/webhook"
)

// A webhook URL that names a non-public address, written as an address, as
// localhost or as a number other software reads as an IPv4 address, is
// refused when the subscription is made — unless private addresses are
// allowed. (A name that resolves to one is refused when the call connects.)
func TestValidateURLRefusesPrivateHosts(t *testing.T) {
	for _, u := range []string{
		"https://127.0.0.1/x", "https://127.8.9.10/x", "https://[::1]/x", "https://localhost/x", "https://LOCALHOST./x",
		"https://api.localhost/x", "https://0.0.0.0/x", "https://[::]/x", "https://10.0.0.1/x", "https://172.16.5.4/x",
		"https://192.168.1.1/x", "https://[fd00::1]/x", "https://169.254.169.254/latest/meta-data/", "https://[fe80::1]/x",
		"https://[fe80::1%25eth0]/x", "https://100.64.0.1/x", "https://[::ffff:10.0.0.1]/x", "https://[::ffff:127.0.0.1]/x",
		"https://[64:ff9b::7f00:1]/x", "https://[2002:a00:1::]/x", "https://224.0.0.1/x", "https://255.255.255.255/x",
		"https://2130706433/x", "https://0x7f000001/x", "https://0X7F.0.0.1/x", "https://127.1/x", "https://0177.0.0.1/x",
		"https://hooks.example.com.2130706433/x", "https://1.2.3.0x1/x", "https://8.8.8.8.8/x", "https://0x/x",
	} {
		err := webhook.ValidateURL(u, false)
		if err == nil || eventflow.ErrorCode(err) != eventflow.EINVALID {
			t.Errorf("ValidateURL(%q, false) = %v; want an invalid-request error", u, err)
		}
	}
	for _, u := range []string{
		"https://hooks.example.com/x", "https://8.8.8.8/x", "https://[2606:4700:4700::1111]/x",
		"https://1password.com/x", "https://123.example/x", "https://x.0xdead.example/x", "https://example.com./x",
	} {
		if err := webhook.ValidateURL(u, false); err != nil {
			t.Errorf("ValidateURL(%q, false) = %v; want it accepted", u, err)
		}
	}
	for _, u := range []string{"https://10.0.0.1/x", "https://localhost/x", "http://127.0.0.1:9000/x", "https://[::1]/x"} {
		if err := webhook.ValidateURL(u, true); err != nil {
			t.Errorf("ValidateURL(%q, true) = %v; private addresses are allowed", u, err)
		}
	}
	if err := webhook.ValidateURL("http://10.0.0.1/x", true); err == nil {
		t.Errorf("plain http to a private, non-loopback address was accepted")
	}
}
