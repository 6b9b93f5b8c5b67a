package smtp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// TLSMode says whether an smtp:// connection upgrades to TLS with STARTTLS.
type TLSMode string

const (
	// StartTLSRequired refuses to talk to a server that does not offer
	// STARTTLS, so credentials and mail never cross the network in clear.
	StartTLSRequired TLSMode = "required"
	// StartTLSOpportunistic upgrades when the server offers STARTTLS and
	// goes on in clear when it does not: the default, because most relays
	// offer it and local test servers do not.
	StartTLSOpportunistic TLSMode = "opportunistic"
	// StartTLSNone never upgrades.
	StartTLSNone TLSMode = "none"
)

// Default ports: submission for smtp:// (RFC 6409), submissions for
// smtps:// (RFC 8314), because eventflow submits mail rather than relaying it.
const (
	defaultPort    = 587
	defaultTLSPort = 465
)

// Server is a parsed SMTP URL.
type Server struct {
	Host string
	Port int
	// ImplicitTLS is set by smtps://: TLS from the first byte, no STARTTLS.
	ImplicitTLS bool
	// StartTLS applies to smtp:// only.
	StartTLS TLSMode
	// InsecureSkipVerify accepts any server certificate; for tests only.
	InsecureSkipVerify bool
	// Username and Password come from the URL's user info; AUTH is used only
	// when Username is set.
	Username string
	Password string
}

// Addr is host:port, with brackets around an IPv6 host.
func (s Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// String is the URL with the password masked, safe to log.
func (s Server) String() string {
	u := url.URL{Scheme: "smtp", Host: s.Addr()}
	if s.ImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.Username != "" {
		u.User = url.UserPassword(s.Username, "xxxxx")
	}
	q := url.Values{}
	if !s.ImplicitTLS && s.StartTLS != StartTLSOpportunistic {
		q.Set("starttls", string(s.StartTLS))
	}
	if s.InsecureSkipVerify {
		q.Set("insecure_skip_verify", "1")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// ParseURL parses smtp://[user[:pass]@]host[:port][?starttls=required|opportunistic|none]
// and smtps://[user[:pass]@]host[:port]; both accept ?insecure_skip_verify=1.
// Unknown query parameters are errors, so that a misspelt one is not
// silently ignored.
func ParseURL(raw string) (Server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Server{}, fmt.Errorf("smtp url: %w", err)
	}
	var s Server
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		s.Port, s.StartTLS = defaultPort, StartTLSOpportunistic
	case "smtps":
		s.Port, s.ImplicitTLS = defaultTLSPort, true
	case "":
		return Server{}, errors.New("smtp url: no scheme: want smtp:// or smtps://")
	default:
		return Server{}, fmt.Errorf("smtp url: scheme %q: want smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return Server{}, errors.New("smtp url: want only host, port, user info and query")
	}
	if s.Host = u.Hostname(); s.Host == "" {
		return Server{}, errors.New("smtp url: no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Server{}, fmt.Errorf("smtp url: port %q: want 1-65535", p)
		}
		s.Port = n
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
		if s.Username == "" {
			return Server{}, errors.New("smtp url: user info without a user name")
		}
	}
	for key, vals := range u.Query() {
		v := vals[len(vals)-1]
		switch key {
		case "starttls":
			if s.ImplicitTLS {
				return Server{}, errors.New("smtp url: starttls does not apply to smtps://, which is TLS from the start")
			}
			switch m := TLSMode(strings.ToLower(v)); m {
			case StartTLSRequired, StartTLSOpportunistic, StartTLSNone:
				s.StartTLS = m
			default:
				return Server{}, fmt.Errorf("smtp url: starttls=%q: want required, opportunistic or none", v)
			}
		case "insecure_skip_verify":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Server{}, fmt.Errorf("smtp url: insecure_skip_verify=%q: want 1 or 0", v)
			}
			s.InsecureSkipVerify = b
		default:
			return Server{}, fmt.Errorf("smtp url: unknown parameter %q (known: starttls, insecure_skip_verify)", key)
		}
	}
	return s, nil
}
