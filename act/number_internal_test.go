package act

import "testing"

// TestJSONEqualNumbers: numbers compare one way, exactly, at every depth
// (ACT-P3 mandate comparison, ACT-D4 constraints), and a huge exponent
// costs nothing.
func TestJSONEqualNumbers(t *testing.T) {
	for _, c := range []struct {
		a, b string
		eq   bool
	}{
		{`1`, `1.0`, true}, {`1`, `1e0`, true}, {`100`, `1e2`, true}, {`0.5`, `5e-1`, true}, {`-0`, `0`, true},
		{`9007199254740992`, `9007199254740993`, false}, {`1`, `2`, false}, {`-1`, `1`, false},
		{`{"a":[1,{"b":1.0}]}`, `{"a":[1.0,{"b":1}]}`, true},
		{`{"a":[9007199254740992]}`, `{"a":[9007199254740993]}`, false},
		{`{"a":"x","b":1}`, `{"b":1,"a":"x"}`, true},
		{`"\u0041"`, `"A"`, true}, {`[1,2]`, `[2,1]`, false}, {`{"a":1}`, `{"a":1,"b":2}`, false},
		{`1e999999999999`, `1e999999999998`, false}, {`true`, `true`, true}, {`null`, `false`, false},
	} {
		if got := jsonEqual([]byte(c.a), []byte(c.b)); got != c.eq {
			t.Errorf("jsonEqual(%s, %s) = %v", c.a, c.b, got)
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{`5`, `10`, -1}, {`1e3`, `999`, 1}, {`-2`, `-1`, -1}, {`0.001`, `1e-3`, 0}, {`-0.5`, `0`, -1}, {`12.5`, `12.50`, 0},
	} {
		if got, ok := numCmp([]byte(c.a), []byte(c.b)); !ok || got != c.want {
			t.Errorf("numCmp(%s, %s) = %d %v, want %d", c.a, c.b, got, ok, c.want)
		}
	}
	// A billion-digit exponent is compared, not built.
	if jsonEqual([]byte(`1e1000000000`), []byte(`1e1000000001`)) {
		t.Error("1e1000000000 == 1e1000000001")
	}
}
