// Package callers checks that real code written against client-go's
// elector, or Istio's fork of it, compiles against this library with only
// its imports changed. Its test takes each caller's source from the module
// cache, rewrites the imports, and builds the caller's package with the
// rewritten files laid over the originals (go build -overlay), so nothing of
// theirs is copied into this repository.
package callers
