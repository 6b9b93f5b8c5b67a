package eventflow_test

import (
	"testing"

	"github.com/eventflow/eventflow"
)

func TestCallerOwnership(t *testing.T) {
	alice := eventflow.Caller{UserID: "alice"}
	admin := eventflow.Caller{Admin: true}
	switch {
	case !alice.Owns("alice") || alice.Owns("bob") || alice.Owns(""):
		t.Fatal("a user owns their own objects only")
	case (eventflow.Caller{}).Owns(""):
		t.Fatal("the zero caller owns nothing")
	case !admin.Owns("bob"):
		t.Fatal("an admin owns everything")
	}
	for _, c := range []struct {
		caller     eventflow.Caller
		asked, got string
		ok         bool
	}{
		{alice, "", "alice", true},
		{alice, "alice", "alice", true},
		{alice, "bob", "", false},
		{eventflow.Caller{}, "", "", false},
		{admin, "", "", true},
		{admin, "bob", "bob", true},
	} {
		if got, ok := c.caller.ListUser(c.asked); got != c.got || ok != c.ok {
			t.Errorf("%+v.ListUser(%q) = %q, %v; want %q, %v", c.caller, c.asked, got, ok, c.got, c.ok)
		}
	}
}

func TestCallerUserFor(t *testing.T) {
	alice := eventflow.Caller{UserID: "alice"}
	if alice.UserFor("") != "alice" || alice.UserFor("bob") != "bob" || (eventflow.Caller{Admin: true}).UserFor("") != "" {
		t.Fatal("UserFor: the one asked for, else the caller's own")
	}
}
