//! Layouts: PyTorch's names, shapes and parameter counts for every architecture.

use super::*;

#[test]
fn tutorial_vae_has_pytorchs_parameter_count_and_names() {
    // 784·400+400 + 2·(400·20+20) + 20·400+400 + 400·784+784 = 652,824.
    let layout = ModelConfig::tutorial(ModelKind::Vae).layout();
    assert_eq!(layout.len, 652_824);
    let names: Vec<_> = layout.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "fc_mu.weight",
            "fc_logvar.weight",
            "fc_mu.bias",
            "fc_logvar.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias"
        ]
    );
    assert_eq!(layout.tensors[0].shape, vec![400, 784]);
    assert_eq!(layout.head.w.len(), 40 * 400);
}

#[test]
fn cvae_widens_fc1_and_fc2_by_ten_and_ae_drops_logvar() {
    let c = ModelConfig::tutorial(ModelKind::Cvae).layout();
    assert_eq!(c.tensors[0].shape, vec![400, 794]);
    assert_eq!(c.tensors.iter().find(|t| t.name == "fc2.weight").unwrap().shape, vec![400, 30]);
    let a = ModelConfig::tutorial(ModelKind::Ae).layout();
    assert!(a.tensors.iter().all(|t| !t.name.starts_with("fc_logvar")));
    assert_eq!(a.head.w.len(), 20 * 400);
}

#[test]
fn deeper_models_name_their_extra_layers() {
    let c = ModelConfig { hidden_layers: 2, hidden_dim: 200, latent_dim: 50, ..ModelConfig::tutorial(ModelKind::Vae) };
    let l = c.layout();
    let names: Vec<_> = l.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(&names[..4], ["fc1.weight", "fc1.bias", "fc1_2.weight", "fc1_2.bias"]);
    assert!(names.contains(&"fc2_2.weight"));
    // Burda et al.'s one-layer model: 784-200-200-50 and mirrored.
    assert_eq!(
        l.len,
        (784 * 200 + 200)
            + (200 * 200 + 200)
            + 2 * (200 * 50 + 50)
            + (50 * 200 + 200)
            + (200 * 200 + 200)
            + (200 * 784 + 784)
    );
}

#[test]
fn work_per_epoch_matches_the_design_note() {
    // The design note: ~1.64 M multiply-adds per example per step, ~196 GFLOP per epoch.
    // Encoder: fc1 forward + weight gradient 2·784·400, head forward + weight + input
    // gradients 3·400·40 = 675,200. Decoder: fc2 forward + weight gradient 2·20·400,
    // fc3 all three 3·400·784, fc2's input gradient (z only) 20·400 = 964,800.
    let c = ModelConfig::tutorial(ModelKind::Vae);
    assert_eq!(c.train_macs_per_example(), 675_200 + 964_800);
    // Importance-weighted with k = 5: the decoder's share five times.
    assert_eq!(c.train_macs_per_example_with(5), 675_200 + 5 * 964_800);
}

#[test]
fn the_reference_conv_vae_has_its_names_shapes_and_258025_parameters() {
    // conv-model.md's table for MNIST, widths 32,64, latent 20.
    let c = ModelConfig::conv(ModelKind::Vae, Shape::mnist(), 20);
    assert_eq!(c.widths, vec![32, 64]);
    let l = c.layout();
    assert_eq!(l.len, 258_025);
    let shape = |n: &str| l.tensors.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n}")).shape.clone();
    assert_eq!(shape("encoder.0.weight"), vec![32, 1, 4, 4]);
    assert_eq!(shape("encoder.1.weight"), vec![64, 32, 4, 4]);
    assert_eq!(shape("fc_mu.weight"), vec![20, 3136]);
    assert_eq!(shape("fc_logvar.weight"), vec![20, 3136]);
    assert_eq!(shape("decoder_input.weight"), vec![3136, 20]);
    assert_eq!(shape("decoder_input.bias"), vec![3136]);
    assert_eq!(shape("decoder.0.weight"), vec![64, 32, 4, 4]);
    assert_eq!(shape("decoder.0.bias"), vec![32]);
    assert_eq!(shape("decoder.1.weight"), vec![32, 1, 4, 4]);
    assert_eq!(shape("decoder.1.bias"), vec![1]);
    assert_eq!(l.tensors.len(), 14);
    assert_eq!((l.output.name.as_str(), l.output.outputs()), ("decoder.1", 784));
    assert_eq!(l.decoder.len(), 2); // decoder_input, decoder.0
    // The cvae: the label joins the flattened features and z.
    let cv = ModelConfig::conv(ModelKind::Cvae, Shape::mnist(), 20).layout();
    let shape = |n: &str| cv.tensors.iter().find(|t| t.name == n).unwrap().shape.clone();
    assert_eq!(shape("fc_mu.weight"), vec![20, 3146]);
    assert_eq!(shape("decoder_input.weight"), vec![3136, 30]);
}

/// A resnet is the conv model plus, per resolution and block, two `[w, w, 3, 3]`
/// convolutions and their biases: MNIST 32,64 with 2 blocks adds 2·2·(32·32·9 + 32) in the
/// encoder at 14×14, 2·2·(64·64·9 + 64) at 7×7, and the same again in the decoder.
#[test]
fn resnet_layouts_add_named_blocks_at_each_resolution() {
    let c = ModelConfig::resnet(ModelKind::Vae, Shape::mnist(), 20, 2);
    c.validate().unwrap();
    let l = c.layout();
    assert_eq!(l.len, 258_025 + 2 * 2 * 2 * (32 * 32 * 9 + 32 + 64 * 64 * 9 + 64));
    let names: Vec<&str> = l.encoder.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "encoder.0",
            "encoder_res.0.0.conv1",
            "encoder_res.0.0.conv2",
            "encoder_res.0.1.conv1",
            "encoder_res.0.1.conv2",
            "encoder.1",
            "encoder_res.1.0.conv1",
            "encoder_res.1.0.conv2",
            "encoder_res.1.1.conv1",
            "encoder_res.1.1.conv2"
        ]
    );
    let names: Vec<&str> = l.decoder.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names[0], "decoder_input");
    assert_eq!(
        names[1..5],
        ["decoder_res.0.0.conv1", "decoder_res.0.0.conv2", "decoder_res.0.1.conv1", "decoder_res.0.1.conv2"]
    );
    assert_eq!(names[5], "decoder.0");
    assert_eq!(
        names[6..],
        ["decoder_res.1.0.conv1", "decoder_res.1.0.conv2", "decoder_res.1.1.conv1", "decoder_res.1.1.conv2"]
    );
    assert_eq!(l.output.name, "decoder.1");
    // The second convolution of each block adds the block's input, two layers below.
    for stack in [&l.encoder, &l.decoder] {
        for (j, layer) in stack.iter().enumerate() {
            assert_eq!(layer.residual, layer.name.ends_with("conv2"), "{}", layer.name);
            if layer.residual {
                assert_eq!(stack[j - 2].outputs(), layer.outputs());
            }
        }
    }
    let shape = |n: &str| l.tensors.iter().find(|t| t.name == n).unwrap().shape.clone();
    assert_eq!(shape("encoder_res.1.1.conv2.weight"), vec![64, 64, 3, 3]);
    assert_eq!(shape("decoder_res.1.0.conv1.bias"), vec![32]);
    // The flags' combinations.
    assert!(ModelConfig { blocks: 0, ..c.clone() }.validate().unwrap_err().contains("--blocks must be between 1"));
    let conv = ModelConfig::conv(ModelKind::Vae, Shape::mnist(), 20);
    assert!(ModelConfig { blocks: 1, ..conv.clone() }.validate().unwrap_err().contains("--arch resnet"));
    assert_eq!(c.layers_summary(), "resnet 32,64 x2");
    assert_eq!(conv.layers_summary(), "conv 32,64");
}

#[test]
fn conv_work_per_example_matches_the_design_note() {
    // conv-model.md: 3.6 M multiply-adds per image forward. Encoder 1·32·16·196 +
    // 32·64·16·49, heads 3136·40, decoder_input 20·3136, transposed convs the same as the
    // convs: 2·(100,352 + 1,605,632) + 125,440 + 62,720.
    let c = ModelConfig::conv(ModelKind::Vae, Shape::mnist(), 20);
    let l = c.layout();
    let forward: usize = l.encoder.iter().chain([&l.head]).chain(&l.decoder).chain([&l.output]).map(|x| x.macs()).sum();
    assert_eq!(forward, 2 * (100_352 + 1_605_632) + 125_440 + 62_720);
    // Training: three times that, less encoder.0's input gradient and decoder_input's label
    // rows (none for a vae): ~10.7 M.
    assert_eq!(c.train_macs_per_example(), 3 * forward - 100_352);
}

#[test]
fn default_widths_deepen_with_the_side() {
    assert_eq!(default_widths(28), vec![32, 64]);
    assert_eq!(default_widths(32), vec![32, 64, 128]);
    assert_eq!(default_widths(64), vec![32, 64, 128, 256]);
    assert_eq!(default_widths(128), vec![32, 64, 128, 256, 256]);
    assert_eq!(default_widths(27), Vec::<usize>::new());
}

#[test]
fn widths_too_deep_for_the_image_are_refused_with_a_fix() {
    let msg = check_widths(&[32, 64, 128], Shape::mnist()).unwrap_err();
    assert!(
        msg.contains("divisible by 2^3 = 8") && msg.contains("--image-size 24") && msg.contains("--widths 32,64"),
        "{msg}"
    );
    assert!(check_widths(&[32, 64], Shape::mnist()).is_ok());
    assert!(check_widths(&[32, 64, 128, 256], Shape::new(3, 64, 32)).is_ok());
    assert!(check_widths(&[8; 40], Shape::new(3, 64, 64)).is_err());
}

#[test]
fn colour_and_learned_variance_layouts() {
    let mut c = ModelConfig::conv(ModelKind::Vae, Shape::new(3, 64, 64), 128);
    c.likelihood = Likelihood::Gaussian { sigma: None };
    let l = c.layout();
    assert_eq!(l.encoder[0].weight_shape(), vec![32, 3, 4, 4]);
    assert_eq!(l.output.weight_shape(), vec![32, 3, 4, 4]);
    assert_eq!(l.output.outputs(), 3 * 64 * 64);
    let t = l.tensors.last().unwrap();
    assert_eq!((t.name.as_str(), t.shape.clone(), t.fan_in), ("likelihood.logvar", vec![3], None));
    assert_eq!(l.logvar, Some(t.range.clone()));
}

/// The mixture widens the output layer to its parameters: 10 per component for RGB (logit,
/// then per channel mean, log-scale and coefficient), 3 per component for grey; no
/// `likelihood.logvar`; a serialised config names it and its components.
#[test]
fn mixture_layouts() {
    let mut c = ModelConfig::conv(ModelKind::Vae, Shape::new(3, 32, 32), 64);
    c.likelihood = Likelihood::LogisticMixture { mixtures: 10 };
    let l = c.layout();
    assert_eq!(l.output.weight_shape(), vec![32, 100, 4, 4]);
    assert_eq!((l.output.outputs(), c.output_rows()), (100 * 32 * 32, 100 * 32 * 32));
    assert!(l.logvar.is_none());
    let mut m = ModelConfig::tutorial(ModelKind::Vae);
    m.likelihood = Likelihood::LogisticMixture { mixtures: 5 };
    assert_eq!(m.layout().output.weight_shape(), vec![15 * 784, 400]);
    let json = serde_json::to_string(&m.likelihood).unwrap();
    assert_eq!(json, r#"{"logistic-mixture":{"mixtures":5}}"#);
    assert_eq!(serde_json::from_str::<Likelihood>(&json).unwrap(), m.likelihood);
    m.likelihood = Likelihood::LogisticMixture { mixtures: 0 };
    assert!(m.validate().unwrap_err().contains("--mixtures must be between 1 and 64"));
}

#[test]
fn configs_written_before_shapes_and_likelihoods_still_load() {
    // A config.json model section as session 2 wrote it.
    let old = r#"{"kind":"cvae","image_rows":28,"image_cols":28,"hidden_dim":400,"latent_dim":20,"hidden_layers":1,"activation":"relu"}"#;
    let c: ModelConfig = serde_json::from_str(old).unwrap();
    assert_eq!(c, ModelConfig::tutorial(ModelKind::Cvae));
    let back: ModelConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}
