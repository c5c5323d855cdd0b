package coordinator

import (
	"fmt"
	"math/rand/v2"
	"regexp"

	"github.com/google/uuid"
)

var nameAdjectives = []string{
	"amber", "brave", "calm", "daring", "eager", "fancy", "gentle", "happy", "icy", "jolly",
	"keen", "lucky", "merry", "nimble", "odd", "proud", "quick", "rapid", "shiny", "tidy",
	"urban", "vivid", "witty", "young", "zesty", "bold", "crisp", "deft", "fierce", "grand",
}

var nameNouns = []string{
	"otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "osprey", "panda", "quail",
	"raven", "salmon", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "beaver", "condor",
	"dingo", "egret", "ferret", "gecko", "ibis", "jackal", "koala", "lemur", "moose", "narwhal",
}

// generateName is an "adjective-noun" dataflow name; after a few collisions a number is
// appended so that a free name is always found.
func generateName(attempt int) string {
	name := nameAdjectives[rand.IntN(len(nameAdjectives))] + "-" + nameNouns[rand.IntN(len(nameNouns))]
	if attempt >= 8 {
		name = fmt.Sprintf("%s-%d", name, attempt)
	}
	return name
}

// validDataflowName is what a dataflow name may contain: it is typed on command lines
// and shown in tables.
var validDataflowName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkDataflowName rejects a name that could not be told from an id, or that is awkward
// to type; "" (a generated name) is fine.
func checkDataflowName(name string) error {
	if name == "" {
		return nil
	}
	if _, err := uuid.Parse(name); err == nil {
		return fmt.Errorf("invalid dataflow name %q: it has the form of a dataflow id; choose another name", name)
	}
	if !validDataflowName.MatchString(name) {
		return fmt.Errorf("invalid dataflow name %q: use up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}
