package webhook

import (
	"net/netip"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.215.14":       true,
		"8.8.8.8":             true,
		"2606:4700::1111":     true,
		"127.0.0.1":           false,
		"127.255.0.9":         false,
		"10.0.0.1":            false,
		"172.16.5.4":          false,
		"192.168.1.1":         false,
		"169.254.169.254":     false,
		"0.0.0.0":             false,
		"0.1.2.3":             false,
		"100.64.0.1":          false,
		"100.128.0.1":         true,
		"192.0.0.8":           false,
		"198.18.0.1":          false,
		"224.0.0.1":           false,
		"240.0.0.1":           false,
		"255.255.255.255":     false,
		"::":                  false,
		"::1":                 false,
		"fe80::1":             false,
		"fd00:ec2::254":       false,
		"ff02::1":             false,
		"::ffff:10.0.0.1":     false,
		"::ffff:8.8.8.8":      true,
		"64:ff9b::a00:1":      false, // NAT64 of 10.0.0.1
		"64:ff9b::808:808":    true,  // NAT64 of 8.8.8.8
		"2002:a00:1::1":       false, // 6to4 of 10.0.0.1
		"2001:0:4136:e378::1": false, // Teredo
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}
