// The B2 simulator: see B2Simulator.swift.
