package coordinator

import (
	"fmt"
	"math/rand/v2"
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
