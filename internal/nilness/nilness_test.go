package nilness

import (
	"errors"
	"reflect"
	"testing"
)

type greeter interface{ Greet() string }

type person struct{}

func (*person) Greet() string { return "hi" }

type inner struct {
	Greeter greeter
	Name    string
}

type outer struct {
	First  greeter
	Err    error
	Nested inner
	hidden greeter
	Count  int
}

// TestIsTellsTypedNilsFromValues: a nil, and a nil pointer, map, func, chan
// or slice in an interface, are all nil; a usable value is not.
func TestIsTellsTypedNilsFromValues(t *testing.T) {
	var nilMap map[string]int
	var nilFunc func()
	var nilChan chan int
	var nilSlice []int
	for _, tc := range []struct {
		name string
		v    any
		want bool
	}{
		{"nil", nil, true},
		{"nil pointer", (*person)(nil), true},
		{"nil pointer as an interface", greeter((*person)(nil)), true},
		{"nil map", nilMap, true},
		{"nil func", nilFunc, true},
		{"nil chan", nilChan, true},
		{"nil slice", nilSlice, true},
		{"pointer", &person{}, false},
		{"struct", person{}, false},
		{"int", 0, false},
		{"error", errors.New("x"), false},
	} {
		if got := Is(tc.v); got != tc.want {
			t.Errorf("%s: Is = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestInterfaceFieldsWalksNestedStructs: every exported interface-typed
// field is found, nested ones by dotted name; unexported and other fields
// are not.
func TestInterfaceFieldsWalksNestedStructs(t *testing.T) {
	got := InterfaceFields(reflect.TypeFor[outer]())
	want := map[string][]int{"First": {0}, "Err": {1}, "Nested.Greeter": {2, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("InterfaceFields = %v, want %v", got, want)
	}
}

// TestTypedNilsNamesEachOne: each field holding a typed nil is named, with
// the type it holds; unset fields and usable values are not.
func TestTypedNilsNamesEachOne(t *testing.T) {
	v := outer{First: (*person)(nil), Nested: inner{Greeter: (*person)(nil)}}
	got := TypedNils(reflect.ValueOf(v))
	if len(got) != 2 || got[0].Name != "First" || got[1].Name != "Nested.Greeter" || got[0].Type != reflect.TypeFor[*person]() {
		t.Fatalf("TypedNils = %v; want First and Nested.Greeter, both *nilness.person", got)
	}
	if got := TypedNils(reflect.ValueOf(outer{First: &person{}})); len(got) != 0 {
		t.Fatalf("TypedNils of usable values = %v, want none", got)
	}
}

func TestKeyTakesOnlyNonNilPointers(t *testing.T) {
	type client struct{ name string }
	var typedNil *client
	cases := map[string]struct {
		v    any
		want bool
	}{
		"a pointer":      {&client{}, true},
		"nil":            {nil, false},
		"a typed nil":    {typedNil, false},
		"a struct value": {client{}, false},
		"a map":          {map[string]int{}, false},
		"a func":         {func() {}, false},
	}
	for name, c := range cases {
		if got := Key(c.v); got != c.want {
			t.Errorf("Key(%s) = %t, want %t", name, got, c.want)
		}
	}
}
