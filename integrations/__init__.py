"""Optional integrations: callbacks for Lightning and Hugging Face Transformers, and sinks that
send an audit's records to TensorBoard or Weights & Biases. Each module imports its framework
only when used (extras ``[lightning]``, ``[hf]``, ``[tensorboard]``, ``[wandb]``); the core
package never imports this one."""
