"""The training engine: one optimizer step (train_step), the run state and resuming
(train_state), the optimizer and its parameter groups, LR schedules, Mixup/CutMix, the EMA of
the weights and precise BN. utils/ holds the infrastructure they use (logging, checkpoint IO,
distributed, device, progress, plots)."""
