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

// matchSegments reports whether typ matches pattern, segment by segment.
// It walks the type once, keeping the set of pattern positions reached so
// far, as an NFA: time O(len(pattern)·len(typ)), however many "#" there
// are. (Backtracking over every split per "#" is exponential in their
// number: "#.#.#.#.#.#.#.#.#.x" against a type of 100 segments would not
// finish.)
func matchSegments(pattern, typ []string) bool {
	// at[i]: the first i segments of the pattern can match the type so far.
	at := make([]bool, len(pattern)+1)
	next := make([]bool, len(pattern)+1)
	at[0] = true
	closeHashes(pattern, at)
	for _, seg := range typ {
		clear(next)
		for i, ok := range at[:len(pattern)] {
			if !ok {
				continue
			}
			switch pattern[i] {
			case "#":
				next[i] = true // "#" takes this segment too, and may take more
			case "*":
				next[i+1] = true
			default:
				if pattern[i] == seg {
					next[i+1] = true
				}
			}
		}
		closeHashes(pattern, next)
		at, next = next, at
	}
	return at[len(pattern)]
}

// closeHashes marks, in at, the positions past every "#" reached: "#" may
// match zero segments.
func closeHashes(pattern []string, at []bool) {
	for i, p := range pattern {
		if at[i] && p == "#" {
			at[i+1] = true
		}
	}
}
