// Package nilness finds the values a caller set but that cannot be used: a
// nil pointer (or map, func, chan, slice) held in an interface, as a
// constructor that failed leaves beside its error. Such a value is not ==
// nil, so a plain check lets it through, and its first method call panics.
// The library checks every interface-typed field a caller sets with it, in
// one way, so that a field added later is checked too.
package nilness

import (
	"maps"
	"reflect"
	"slices"
)

// Key reports whether v can be a map key by identity: a non-nil pointer, as
// every typed client is. A value of another kind may not be comparable
// (a map key that is not panics), and two nil pointers would share a key.
func Key(v any) bool {
	return v != nil && reflect.TypeOf(v).Kind() == reflect.Pointer && !reflect.ValueOf(v).IsNil()
}

// Is reports whether v is nil, or a nil pointer, map, func, chan, slice or
// interface held in an interface.
func Is(v any) bool {
	if v == nil {
		return true
	}
	return isValue(reflect.ValueOf(v))
}

func isValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// InterfaceFields lists the exported interface-typed fields of the struct
// type t, and of the structs it holds, by their dotted names (such as
// "LockConfig.EventRecorder"), each with its index for FieldByIndex.
func InterfaceFields(t reflect.Type) map[string][]int {
	return interfaceFields(t, "", nil)
}

func interfaceFields(t reflect.Type, prefix string, index []int) map[string][]int {
	fields := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		at := append(slices.Clone(index), f.Index...)
		switch f.Type.Kind() {
		case reflect.Interface:
			fields[prefix+f.Name] = at
		case reflect.Struct:
			maps.Copy(fields, interfaceFields(f.Type, prefix+f.Name+".", at))
		}
	}
	return fields
}

// TypedNils returns, sorted by name, the interface-typed fields of the
// struct value v (see InterfaceFields) that hold a typed nil, each with the
// type of the nil it holds.
func TypedNils(v reflect.Value) []Field {
	var found []Field
	for name, index := range InterfaceFields(v.Type()) {
		value := v.FieldByIndex(index)
		if !value.IsNil() && isValue(value.Elem()) {
			found = append(found, Field{Name: name, Type: value.Elem().Type()})
		}
	}
	slices.SortFunc(found, func(a, b Field) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return found
}

// Field is an interface-typed field that holds a typed nil.
type Field struct {
	Name string
	Type reflect.Type
}
