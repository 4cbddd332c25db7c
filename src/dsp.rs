//! Signal processing shared by the models: STFT/iSTFT (rustfft), mel filterbank, log-power mel.
