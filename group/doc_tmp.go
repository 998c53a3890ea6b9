// Package group runs a group of elections.
package group
