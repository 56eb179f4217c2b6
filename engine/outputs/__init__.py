"""What a run writes: result files (:mod:`.export`) and the defect report (:mod:`.report`)."""
