package filter

import (
	"errors"
	"strings"
	"testing"
)

// flatBody has no "data" member: event.data is the whole body.
const flatBody = `{"amount": 120.5, "count": 3, "currency": "EUR", "items": [{"sku": "adv-120"}]}`

func eventWith(body string) *Event {
	return &Event{Type: "orders/placed", SubType: "product:adv/adv-120", Tenant: "OU1243", Partner: "acme", ID: "evt_1",
		Headers: map[string]string{"x-region": "eu"}, Body: []byte(body)}
}

func event(testing.TB) *Event { return eventWith(flatBody) }

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		name   string
		filter Filter
		want   bool
	}{
		{"empty filter matches everything", Filter{}, true},
		{"type", Filter{Types: []string{"orders/placed"}}, true},
		{"type wildcard", Filter{Types: []string{"orders/*"}}, true},
		{"other type", Filter{Types: []string{"orders/updated", "users/*"}}, false},
		{"sub-type", Filter{SubTypes: []string{"product:adv/*"}}, true},
		{"other sub-type", Filter{SubTypes: []string{"product:cdv/*"}}, false},
		{"tenant", Filter{Tenants: []string{"OU1", "OU1243"}}, true},
		{"other tenant", Filter{Tenants: []string{"OU1"}}, false},
		{"amount over 100", Filter{Expression: "event.data.amount > 100"}, true},
		{"amount over 1000", Filter{Expression: "event.data.amount > 1000"}, false},
		{"an integer count", Filter{Expression: "event.data.count == 3 && event.data.count < 3.5"}, true},
		{"header and partner", Filter{Expression: `event.headers["x-region"] == "eu" && event.partner == "acme"`}, true},
		{"list in the body", Filter{Expression: `event.data.items.exists(i, i.sku == "adv-120")`}, true},
		{"absent field does not match", Filter{Expression: "event.data.missing > 1"}, false},
		{"every part must match", Filter{Types: []string{"orders/*"}, Tenants: []string{"OU9"}, Expression: "true"}, false},
		{"has()", Filter{Expression: "has(event.data.currency) && event.data.currency == 'EUR'"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			compiled, err := Compile(c.filter)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := compiled.Match(event(t))
			if got != c.want {
				t.Fatalf("Match = %t, want %t", got, c.want)
			}
		})
	}
}

// The seeds' events are envelopes: event.data is the envelope's data member, event.body
// the whole body; a body without a data member is event.data whole.
func TestEnvelopeData(t *testing.T) {
	envelope := `{"id": "evt_1", "type": "orders/placed", "timestamp": "2024-05-01T10:00:00Z", "data": {"amount": 120, "currency": "EUR"}}`
	for _, c := range []struct {
		name, body, expr string
		want             bool
	}{
		{"envelope data", envelope, "event.data.amount > 100", true},
		{"envelope data, not over", envelope, "event.data.amount > 1000", false},
		{"envelope body", envelope, `event.body.type == "orders/placed" && event.body.data.currency == "EUR"`, true},
		{"envelope: the body's own fields are not data", envelope, `has(event.data.timestamp)`, false},
		{"flat body is data", flatBody, "event.data.amount > 100", true},
		{"flat body is body", flatBody, "event.body.amount > 100", true},
		{"a data member that is not an object", `{"data": [1, 2, 3]}`, "size(event.data) == 3", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			compiled, err := Compile(Filter{Expression: c.expr})
			if err != nil {
				t.Fatal(err)
			}
			got, err := compiled.Match(eventWith(c.body))
			if got != c.want {
				t.Fatalf("Match(%s) = %t (%v), want %t", c.expr, got, err, c.want)
			}
		})
	}
}

// The body is decoded once per event, whatever the number of expressions that read it,
// and only when the budget allows; over it, body expressions do not match and say why,
// while those that do not read the body still do.
func TestBodyDecodedOnceWithinBudget(t *testing.T) {
	amount, err := Compile(Filter{Expression: "event.data.amount > 100"})
	if err != nil {
		t.Fatal(err)
	}
	region, err := Compile(Filter{Expression: `event.headers["x-region"] == "eu"`})
	if err != nil {
		t.Fatal(err)
	}
	var asked []int64
	e := event(t)
	e.Reserve = func(n int64) bool { asked = append(asked, n); return true }
	for range 5 {
		if ok, err := amount.Match(e); !ok || err != nil {
			t.Fatalf("Match = %t, %v", ok, err)
		}
	}
	if len(asked) != 1 || asked[0] != DecodedBytes(len(flatBody)) {
		t.Fatalf("budget asked %v, want once for %d bytes", asked, DecodedBytes(len(flatBody)))
	}
	refused := event(t)
	refused.Reserve = func(int64) bool { return false }
	if ok, err := amount.Match(refused); ok || !errors.Is(err, ErrOverBudget) {
		t.Fatalf("over the budget: Match = %t, %v; want no match, ErrOverBudget", ok, err)
	}
	if ok, err := region.Match(refused); !ok || err != nil {
		t.Fatalf("a header expression over the budget: Match = %t, %v; want a match", ok, err)
	}
}

// A bad expression is refused with the compiler's message, which names what is wrong.
func TestCompileRefuses(t *testing.T) {
	for _, c := range []struct{ expr, says string }{
		{"event.data.amount >", "Syntax error"},
		{"event.data.amount + 1", "must be a bool"},
		{"event.tyep == 'x'", `no field "tyep"`},
		{"nosuch.x == 1", "undeclared reference"},
		{"'a' == 1", "no matching overload"},
		{strings.Repeat("true && ", 600) + "true", "longer than"},
	} {
		_, err := Compile(Filter{Expression: c.expr})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Compile(%.40q) = %v, want an error saying %q", c.expr, err, c.says)
		}
	}
}

// An expression that would run long stops at the cost limit and does not match.
func TestCostLimit(t *testing.T) {
	c, err := Compile(Filter{Expression: "event.data.items.all(a, event.data.items.all(b, event.data.items.all(c, a == b && b == c)))"})
	if err != nil {
		t.Fatal(err)
	}
	e := eventWith(`{"items": [` + strings.TrimSuffix(strings.Repeat(`{"sku": "x"},`, 200), ",") + `]}`)
	if ok, err := c.Match(e); ok || err == nil {
		t.Fatalf("Match = %t, %v; want no match past the cost limit", ok, err)
	}
}

func BenchmarkExpression(b *testing.B) {
	c, err := Compile(Filter{Types: []string{"orders/*"}, Expression: "event.data.amount > 100"})
	if err != nil {
		b.Fatal(err)
	}
	e := event(b)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := c.Match(e); !ok {
			b.Fatal("no match")
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"event.data.amount > 100", `event.headers["x"] == "y"`, "event.type.startsWith('orders/')", "has(event.data.a)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := Compile(Filter{Expression: expr})
		if err != nil {
			return
		}
		_, _ = c.Match(event(t))
	})
}
