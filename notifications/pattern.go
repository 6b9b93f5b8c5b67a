package notifications

import (
	"fmt"
	"regexp"
	"strings"
)

// Pattern is an event-type pattern, in the dotted hierarchy of event types
// (<domain>.<entity>.<action>), as AMQP topic exchanges match routing keys:
//
//	orders.order.created   exactly that type
//	orders.order.*         "*" is exactly one segment: every action on orders
//	orders.#               "#" is zero or more segments: everything under orders
//	#                      every event
type Pattern struct {
	text     string
	segments []string
}

var patternSegment = regexp.MustCompile(`^(\*|#|[a-z][a-z0-9_-]*)$`)

// ParsePattern checks and compiles a pattern.
func ParsePattern(s string) (Pattern, error) {
	if s == "" || len(s) > 255 {
		return Pattern{}, fmt.Errorf("a pattern is 1 to 255 characters")
	}
	segments := strings.Split(s, ".")
	if len(segments) > 10 {
		return Pattern{}, fmt.Errorf("a pattern has at most 10 segments")
	}
	for _, seg := range segments {
		if !patternSegment.MatchString(seg) {
			return Pattern{}, fmt.Errorf("segment %q: want lower-case letters, digits, _ or -, or * (one segment) or # (any number)", seg)
		}
	}
	return Pattern{text: s, segments: segments}, nil
}

func (p Pattern) String() string { return p.text }

// Match reports whether an event type matches the pattern.
func (p Pattern) Match(eventType string) bool {
	return matchSegments(p.segments, strings.Split(eventType, "."))
}

func matchSegments(pattern, typ []string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case "#":
			// Zero or more segments: try every split of what is left.
			for skip := 0; skip <= len(typ); skip++ {
				if matchSegments(pattern[1:], typ[skip:]) {
					return true
				}
			}
			return false
		case "*":
			if len(typ) == 0 {
				return false
			}
		default:
			if len(typ) == 0 || typ[0] != pattern[0] {
				return false
			}
		}
		pattern, typ = pattern[1:], typ[1:]
	}
	return len(typ) == 0
}
