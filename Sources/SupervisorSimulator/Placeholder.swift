// Supervisor simulator: see SupervisorSimulator.swift.
