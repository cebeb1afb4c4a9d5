package optim

// Moments is the per-parameter state Adam and RAdam share. A parameter
// that has never had a gradient has step 0 and zero moments, which is
// exactly how torch initialises its state on the first gradient.
type Moments struct {
	Steps    []int64     // updates each parameter has received
	ExpAvg   [][]float32 // running mean of the gradient
	ExpAvgSq [][]float32 // running mean of the squared gradient
}

func newMoments(p *params) Moments {
	return Moments{
		Steps:    make([]int64, len(p.vars)),
		ExpAvg:   p.zeroBuffers(),
		ExpAvgSq: p.zeroBuffers(),
	}
}

func (m *Moments) clone() Moments {
	return Moments{
		Steps:    append([]int64(nil), m.Steps...),
		ExpAvg:   cloneBuffers(m.ExpAvg),
		ExpAvgSq: cloneBuffers(m.ExpAvgSq),
	}
}

// check verifies that m fits the parameters of p.
func (m *Moments) check(name string, p *params) error {
	if err := p.checkSteps(name, m.Steps); err != nil {
		return err
	}
	if err := p.checkBuffers(name, "ExpAvg", m.ExpAvg); err != nil {
		return err
	}
	return p.checkBuffers(name, "ExpAvgSq", m.ExpAvgSq)
}

// load copies a checked st into m, keeping m's buffers.
func (m *Moments) load(st Moments) {
	copy(m.Steps, st.Steps)
	copyBuffers(m.ExpAvg, st.ExpAvg)
	copyBuffers(m.ExpAvgSq, st.ExpAvgSq)
}
