//! The 8 rotations and flips of a picture (the dihedral group of the square).

use image::{RgbImage, imageops};

/// One of the 8 ways to turn a picture without distorting it, named as in
/// Meta's PDQ test images (`bridge-1-original.jpg` ... `bridge-8-flip-minus-1.jpg`).
///
/// Each is an orthogonal 2x2 matrix on pixel coordinates (x to the right, y
/// downwards); [`Dihedral::then`] composes them, so the 8 form a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dihedral {
    /// Unchanged.
    Original,
    /// Turned a quarter anticlockwise (as Meta's `bridge-2-rotate-90.jpg`).
    Rotate90,
    /// Turned upside down.
    Rotate180,
    /// Turned a quarter clockwise.
    Rotate270,
    /// Mirrored top to bottom (the x axis is the mirror).
    FlipX,
    /// Mirrored left to right (the y axis is the mirror).
    FlipY,
    /// Mirrored across the main diagonal (transposed).
    FlipPlus1,
    /// Mirrored across the anti-diagonal.
    FlipMinus1,
}

impl Dihedral {
    /// All 8, in the order of Meta's test images.
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Original,
        Dihedral::Rotate90,
        Dihedral::Rotate180,
        Dihedral::Rotate270,
        Dihedral::FlipX,
        Dihedral::FlipY,
        Dihedral::FlipPlus1,
        Dihedral::FlipMinus1,
    ];

    /// The matrix `m` with `(x', y') = m (x, y)` about the picture's centre.
    pub const fn matrix(self) -> [[i8; 2]; 2] {
        match self {
            Dihedral::Original => [[1, 0], [0, 1]],
            Dihedral::Rotate90 => [[0, 1], [-1, 0]],
            Dihedral::Rotate180 => [[-1, 0], [0, -1]],
            Dihedral::Rotate270 => [[0, -1], [1, 0]],
            Dihedral::FlipX => [[1, 0], [0, -1]],
            Dihedral::FlipY => [[-1, 0], [0, 1]],
            Dihedral::FlipPlus1 => [[0, 1], [1, 0]],
            Dihedral::FlipMinus1 => [[0, -1], [-1, 0]],
        }
    }

    /// The element with the given matrix, if it is one of the 8.
    pub fn from_matrix(m: [[i8; 2]; 2]) -> Option<Dihedral> {
        Dihedral::ALL.into_iter().find(|d| d.matrix() == m)
    }

    /// `self` followed by `next`, as one element.
    pub fn then(self, next: Dihedral) -> Dihedral {
        let a = self.matrix();
        let b = next.matrix();
        let mut m = [[0i8; 2]; 2];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell = (0..2)
                    .map(|k| {
                        b.get(i).and_then(|r| r.get(k)).copied().unwrap_or(0)
                            * a.get(k).and_then(|r| r.get(j)).copied().unwrap_or(0)
                    })
                    .sum();
            }
        }
        // A product of two of the 8 matrices is one of the 8.
        Dihedral::from_matrix(m).unwrap_or(Dihedral::Original)
    }

    /// The element that undoes `self`.
    pub fn inverse(self) -> Dihedral {
        match self {
            Dihedral::Rotate90 => Dihedral::Rotate270,
            Dihedral::Rotate270 => Dihedral::Rotate90,
            other => other,
        }
    }

    /// The picture turned by `self`.
    pub(crate) fn apply(self, img: &RgbImage) -> RgbImage {
        match self {
            Dihedral::Original => img.clone(),
            // `imageops` turns clockwise.
            Dihedral::Rotate90 => imageops::rotate270(img),
            Dihedral::Rotate180 => imageops::rotate180(img),
            Dihedral::Rotate270 => imageops::rotate90(img),
            Dihedral::FlipX => imageops::flip_vertical(img),
            Dihedral::FlipY => imageops::flip_horizontal(img),
            Dihedral::FlipPlus1 => imageops::flip_horizontal(&imageops::rotate90(img)),
            Dihedral::FlipMinus1 => imageops::flip_horizontal(&imageops::rotate270(img)),
        }
    }
}
