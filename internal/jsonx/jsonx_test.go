package jsonx

import "testing"

func TestObjectsInArray(t *testing.T) {
	objs, ok := ObjectsInArray([]byte(`[{"a":1,"b":"x"}, {"c":[1,{"d":2}]}]`))
	if !ok || len(objs) != 2 || len(objs[0]) != 2 || objs[1][0].Name != "c" || objs[1][0].Kind != Array {
		t.Fatalf("%v %v", objs, ok)
	}
	if objs, ok := ObjectsInArray([]byte(`[]`)); !ok || len(objs) != 0 {
		t.Fatal("empty array")
	}
	for _, bad := range []string{`[{"a":1,"a":2}]`, `[1]`, `[{"a":1},2]`, `{"a":1}`, `[{"a":1}`, `[{"a":{"b":1,"b":2}}]`} {
		if _, ok := ObjectsInArray([]byte(bad)); ok {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestElementsAndKind(t *testing.T) {
	els, ok := Elements([]byte(`[1, "two", {"three":3}, [4]]`))
	if !ok || len(els) != 4 || KindOf(els[0]) != Number || KindOf(els[1]) != String || KindOf(els[2]) != Object || KindOf(els[3]) != Array {
		t.Fatalf("%q %v", els, ok)
	}
	if KindOf([]byte(" null")) != Null || KindOf([]byte("true")) != Bool || KindOf([]byte("?")) != Invalid {
		t.Fatal("KindOf")
	}
}

func TestValidateDepthAndStrictness(t *testing.T) {
	k, d, err := Validate([]byte(`{"a":{"b":[1,{"c":{}}]}}`))
	if err != nil || k != Object || d != 5 {
		t.Fatalf("%v %d %v", k, d, err)
	}
	for _, bad := range []string{`{"a":01}`, `{"a":1,}`, `{'a':1}`, "{\"a\":\"\x01\"}", `{"a":1}{}`, `[1.]`, `{"a":tru}`} {
		if _, _, err := Validate([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	deep := ""
	for i := 0; i < MaxDepth+1; i++ {
		deep += "["
	}
	if _, _, err := Validate([]byte(deep)); err == nil {
		t.Error("nesting beyond MaxDepth accepted")
	}
}
