package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	eventflow "github.com/eventflow/eventflow"
)

// ValidateURL checks a webhook URL when a subscription is created, so that
// a bad one is refused then rather than failing every delivery: absolute,
// https (http only to a loopback host, and only when allowPrivate, for
// development and tests), no user info (credentials in a URL end up in
// logs), a port, if any, in 1-65535, no fragment. Unless allowPrivate, a
// host that is an IP address must be a public one (not loopback, private,
// link-local …, as the Sender's dialer rules), "localhost" and its
// subdomains are refused, and so is a host that only looks like a name but
// that other software reads as an IPv4 address (2130706433, 0x7f000001,
// 127.1, 0177.0.0.1). The error is an eventflow.EINVALID *eventflow.Error.
//
// It does not resolve the host: the address is checked when the Sender
// connects, where DNS answers cannot change under it.
func ValidateURL(raw string, allowPrivate bool) error {
	invalid := func(format string, args ...any) error {
		return eventflow.Errorf(eventflow.EINVALID, "webhook url: "+format, args...)
	}
	if raw == "" {
		return invalid("empty")
	}
	if len(raw) > 2048 {
		return invalid("longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid("not a URL")
	}
	if !u.IsAbs() || u.Opaque != "" {
		return invalid("not an absolute http(s) URL")
	}
	host := u.Hostname()
	if host == "" {
		return invalid("no host")
	}
	if u.User != nil {
		return invalid("must not contain user info")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid("port %q out of range", p)
		}
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return invalid("must not have a fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !allowPrivate || !loopbackHost(host) {
			return invalid("must use https")
		}
	default:
		return invalid("scheme %q: must be https", u.Scheme)
	}
	if allowPrivate {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !publicAddr(a) {
			return invalid("%s is not a public address", a)
		}
		return nil
	}
	if loopbackHost(host) {
		return invalid("%s is this machine", host)
	}
	if endsInNumber(host) {
		return invalid("host %q reads as an IPv4 address; write a public address in dotted decimal, or a name", host)
	}
	return nil
}

// endsInNumber reports whether the last label of host is a number, decimal
// or 0x-hexadecimal: the WHATWG URL rule by which browsers, curl and many
// resolvers read such a host as an IPv4 address in some legacy notation.
func endsInNumber(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := strings.ToLower(labels[len(labels)-1])
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		last = hex
		if last == "" {
			return true
		}
		return strings.Trim(last, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// loopbackHost reports whether host names this machine without DNS help.
func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// errForbiddenAddress is what the dialer's guard returns: the target
// resolved to an address a webhook must not reach.
var errForbiddenAddress = errors.New("address not allowed for webhooks")

// guardDial is a net.Dialer Control function: it runs for every address
// the host resolved to, after resolution and before the connect system
// call, so no packet goes to a refused address and a DNS answer that changes
// between a check and the connection (rebinding) gains nothing.
func guardDial(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errForbiddenAddress, address, err)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", errForbiddenAddress, ap.Addr())
	}
	return nil
}

// publicAddr reports whether a is a global unicast address: not loopback,
// private (RFC 1918, RFC 4193), link-local (which holds the cloud metadata
// services), multicast, unspecified, or in another special-purpose block
// that reaches something other than the public internet.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	if a.Is4() {
		b := a.As4()
		switch {
		case b[0] == 0, // "this network"
			b[0] == 100 && b[1]&0xc0 == 64,        // 100.64.0.0/10, carrier-grade NAT
			b[0] == 192 && b[1] == 0 && b[2] == 0, // 192.0.0.0/24, protocol assignments
			b[0] == 198 && b[1]&0xfe == 18,        // 198.18.0.0/15, benchmarking
			b[0] >= 240:                           // reserved and broadcast
			return false
		}
		return true
	}
	b := a.As16()
	switch {
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b: // 64:ff9b::/96 (and /48), NAT64
		return publicAddr(netip.AddrFrom4([4]byte(b[12:16])))
	case b[0] == 0x20 && b[1] == 0x02: // 2002::/16, 6to4
		return publicAddr(netip.AddrFrom4([4]byte(b[2:6])))
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00: // 2001::/32, Teredo
		return false
	}
	return true
}
